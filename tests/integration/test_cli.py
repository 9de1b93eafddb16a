"""The CLI end to end on small data: outputs, and one-line errors with exit code 2. The commands run in this
process (:func:`tests.helpers.coea`) but ``coea run``, whose console is the point; test_cli_data runs a real
``python -m coea.cli`` to exit codes 0 and 2."""

import json
import re

import pytest

from coea.config import EvalConfig
from tests.helpers import coea, coea_process


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("user_id,item_id,timestamp\n1,2,3\n", "column 'category': missing required column"),
        ("user_id,item_id,category,timestamp\n1,2,a,3\n1,3,b,yesterday\n",
         "column 'timestamp', line 3: non-numeric timestamp 'yesterday'"),
        ("", "the file is empty"),
        ("user_id,item_id,category,timestamp\n", "the table is empty"),
    ],
    ids=["missing-column", "non-numeric-timestamp", "empty-file", "header-only"],
)
def test_bad_csv_gives_one_line_and_exit_2(tmp_path, content, expected):
    path = tmp_path / "log.csv"
    path.write_text(content)
    out = tmp_path / "out"
    res = coea("evaluate", "--data", f"csv:{path}", "--out", str(out))
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and str(path) in errors[0]
    assert "Traceback" not in res.stderr
    assert not out.exists()  # nothing half-written


def test_missing_file_and_bad_spec(tmp_path):
    res = coea("data", "stats", "--data", f"parquet:{tmp_path / 'nope.parquet'}")
    assert res.returncode == 2 and f"error: {tmp_path / 'nope.parquet'}: file not found" in res.stderr  # named
    res = coea("data", "stats", "--data", "mysql:foo")
    assert res.returncode == 2 and "unknown data spec" in res.stderr


def test_column_mapping_and_stats(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("uid,iid,genre,ts\n1,a,x,1700000010\n1,b,y,1700000020\n2,a,x,1700000015\n")
    res = coea("data", "stats", "--data", f"csv:{path}", "--user-col", "uid", "--item-col", "iid",
               "--category-col", "genre", "--timestamp-col", "ts")
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert (stats["users"], stats["items"], stats["interactions"], stats["categories"]) == (2, 2, 3, 2)


def test_column_flags_map_a_csv_for_group_and_are_refused_beside_from_run(tmp_path):
    """`coea group` (as `run`, `simulate` and `ablate`) takes the --*-col options `evaluate` has: a log with other
    column names needs no config file; beside --from-run (which reads the run's prepared data) they are an error."""
    import pandas as pd

    from coea.config import SyntheticConfig
    from coea.data.synthetic import generate_synthetic

    log = generate_synthetic(SyntheticConfig(n_users=90, n_categories=20, n_groups=3)).interactions
    names = {"user_id": "uid", "item_id": "iid", "category": "genre", "timestamp": "ts"}
    path = tmp_path / "log.csv"
    log.rename(columns=names).to_csv(path, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dsie:\n  encoder: {dim: 16, epochs: 2}\n  rqvae: {codebook_sizes: [4, 4, 4], epochs: 10}\n"
                   "  group: {min_group_size: 3}\n")
    out = tmp_path / "g"
    res = coea("group", "--config", str(cfg), "--data", f"csv:{path}", "--user-col", "uid", "--item-col", "iid",
               "--category-col", "genre", "--timestamp-col", "ts", "--out", str(out))
    assert res.returncode == 0, res.stderr
    prepared = pd.read_parquet(out / "data" / "interactions.parquet")
    assert prepared["user_id"].nunique() == 90 and len(prepared) == len(log)
    res = coea("ablate", "--from-run", str(out), "--user-col", "uid", "--out", str(tmp_path / "ab"))
    assert res.returncode == 2
    assert "--user-col and --from-run both given" in res.stderr and "drop --user-col" in res.stderr
    assert not (tmp_path / "ab").exists()
    # evaluate --from-run without --data scores the run's prepared data: a data option there did nothing yet was
    # written into OUT/config.json, and the next --from-run OUT failed on it (session 55)
    res = coea("evaluate", "--from-run", str(out), "--methods", "pop", "--category-level", "first",
               "--out", str(tmp_path / "ev1"))
    assert res.returncode == 2 and not (tmp_path / "ev1").exists()
    assert "--category-level has no effect with --from-run alone" in res.stderr and "pass --data too" in res.stderr
    other = tmp_path / "other.yaml"  # another config's data section is not what is scored: not recorded either
    other.write_text(cfg.read_text() + "data: {spec: 'csv:elsewhere.csv', user_col: nobody}\n")
    res = coea("evaluate", "--from-run", str(out), "--config", str(other), "--methods", "pop",
               "--out", str(tmp_path / "ev2"))
    assert res.returncode == 0, res.stderr
    recorded = json.loads((tmp_path / "ev2" / "config.json").read_text())["data"]
    assert recorded["spec"] == f"csv:{path}" and recorded["user_col"] == "uid"


def test_evaluate_writes_outputs_on_synthetic(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synthetic:\n  n_users: 80\n  n_categories: 60\n  n_groups: 3\n")
    out = tmp_path / "ev"
    res = coea("evaluate", "--config", str(cfg), "--methods", "pop,pop_novel,markov+x", "--k", "5,10",
               "--out", str(out))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"pop", "pop_novel", "markov+x"}
    assert metrics["methods"]["pop_novel"]["NCP@10"] == 1.0
    assert metrics["protocol"]["n_future"] == 10 and metrics["dataset"]["users"] == 80
    assert "| pop_novel |" in (out / "metrics.md").read_text()
    assert (out / "metrics_at_10.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "config.json").read_text())["synthetic"]["n_users"] == 80
    assert (out / "ground_truth" / "truth_affinity.parquet").is_file()
    assert "| markov+x |" in res.stdout


def test_run_writes_a_timestamped_run_dir(tmp_path):
    """``coea run`` is the coea_training pipeline under kfp.local (tiny DSIE and LLMs)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synthetic:\n  n_users: 60\n  n_categories: 12\n  n_groups: 3\n"
                   "eval:\n  methods: [pop, markov, nllm_sft+x]\n"
                   "dsie:\n  encoder: {dim: 16, epochs: 2}\n  rqvae: {epochs: 10}\n"
                   "llm:\n  model: {hidden_size: 32, intermediate_size: 64}\n"
                   "  novelty: {epochs: 1, max_examples: 200}\n  relevance: {epochs: 1, max_examples: 200}\n"
                   "pco: {rounds: 1, users_per_round: 8, candidates: 4, dpo: {epochs: 1},"
                   " relevance_refresh: {max_examples: 40}}\n")  # small steps: the test is about their plumbing
    res = coea_process("run", "--config", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert res.returncode == 0, res.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file() and (run_dir / "metrics.md").is_file()
    assert set(json.loads((run_dir / "metrics.json").read_text())["methods"]) == {"pop", "markov", "nllm_sft+x"}
    assert (run_dir / "recs.sqlite").is_file() and (run_dir / "llm" / "novelty").is_dir()
    assert "| nllm_sft+x |" in res.stdout and f"run directory: {run_dir}" in res.stdout
    assert re.search(r"; the run took \d+ s$", next(ln for ln in res.stdout.splitlines() if "run directory:" in ln))
    # the step server's start-up is its own line before the first step, not part of prepare-data's time
    assert "kfp.local: step server ready in" in res.stderr and "ran locally in" not in res.stderr + res.stdout
    # the console: one line per step, the table, where the outputs are; the steps' own logs are in a file
    lines = res.stdout.splitlines() + res.stderr.splitlines()
    assert len(lines) + len(EvalConfig().methods) - 3 < 60, "\n".join(lines)  # (the demo: a row per default method)
    assert "Executing task 'pco-loop'" in (run_dir / "kfp" / "steps.log").read_text()
    assert "Executing task" not in res.stdout and "[KFP Executor" not in res.stdout
    assert sum(line.split()[1:2] == ["success"] for line in lines) == 9


def test_bad_config_key_is_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("split:\n  n_futur: 3\n")
    res = coea("evaluate", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "n_futur" in res.stderr


def test_group_writes_dsie_outputs_and_cold_start_slice(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synthetic:\n  n_users: 90\n  n_categories: 20\n  n_groups: 3\n"
                   "split:\n  min_history: 40\n"
                   "dsie:\n  encoder: {dim: 16, epochs: 4}\n  rqvae: {codebook_sizes: [4, 4, 4], epochs: 30}\n"
                   "  group: {min_group_size: 3}\n")
    out = tmp_path / "g"
    res = coea("group", "--config", str(cfg), "--out", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout[: res.stdout.index("}") + 1])
    assert summary["M_N"] >= 1 and "ari_vs_planted" in summary and summary["cold_start_users"] > 0
    for name in ("groups.parquet", "profiles.json", "group_report.json", "encoder/encoder.pt", "rqvae/rqvae.pt"):
        assert (out / "dsie" / name).is_file(), name
    assert (out / "data" / "interactions.parquet").is_file()
    ev = tmp_path / "ev"
    res = coea("evaluate", "--config", str(cfg), "--methods", "pop,group_pop_novel,sasrec", "--out", str(ev),
               "--from-run", str(out))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["protocol"]["cold_start_users"] == summary["cold_start_users"]
    assert set(metrics["cold_start"]) == {"pop", "group_pop_novel", "sasrec"}
    assert metrics["methods"]["group_pop_novel"]["NCP@10"] > 0.9
    assert "## Cold-start users" in (ev / "metrics.md").read_text()
    assert json.loads((ev / "config.json").read_text())["dsie"]["encoder"]["dim"] == 16  # the YAML's dsie is used


def test_recommend_reads_the_store(tmp_path):
    import pandas as pd

    from coea.store import KVStore

    recs = pd.DataFrame({"user_id": ["u1", "u1"], "rank": [1, 2], "category": ["a", "b"], "score": [0.9, 0.5]})
    with KVStore(tmp_path / "recs.sqlite") as kv:
        kv.publish(recs)
    res = coea("recommend", "--store", str(tmp_path / "recs.sqlite"), "--user", "u1")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["category"] for r in out["recommendations"]] == ["a", "b"]
    res = coea("recommend", "--store", str(tmp_path / "recs.sqlite"), "--user", "nobody")
    assert res.returncode == 2 and "no recommendations" in res.stderr
    assert "ids in this store look like u1" in res.stderr  # a real id of the store, not only the format
    assert "a user who has had every category gets no list" in res.stderr  # the other reason (audit, session 55)
    res = coea("recommend", "--store", str(tmp_path / "missing.sqlite"), "--user", "u1")
    assert res.returncode == 2 and "store not found" in res.stderr


def test_recommend_refuses_a_foreign_or_empty_sqlite_file_and_leaves_it_untouched(tmp_path, capsys, monkeypatch):
    """`coea recommend` on another application's SQLite file, or on an empty file, is one line saying it is not a
    coea store, exit 2; the file is byte for byte what it was (no tables added, no WAL switch) and the folder holds
    no -wal/-shm file beside it. On a store never published to it says so (not "version None"); the -wal/-shm files
    SQLite may leave beside a real store after a lookup are not checked here."""
    import hashlib
    import logging
    import sqlite3

    from tests.helpers import run_cli

    monkeypatch.setattr(logging.getLogger("coea"), "handlers", [])
    foreign = tmp_path / "app.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO orders VALUES (1, 9.5)")
    conn.close()
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for path, words in ((foreign, "not a coea store (its tables: orders)"), (empty, "an empty file, not a coea store")):
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        code, out, err = run_cli(["recommend", "--store", str(path), "--user", "u1"], capsys)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert path.name in err and words in err, err
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sqlite", "empty.sqlite"]
    from coea.store import KVStore

    with KVStore(tmp_path / "new.sqlite"):  # a store made, never published to
        pass
    code, out, err = run_cli(["recommend", "--store", str(tmp_path / "new.sqlite"), "--user", "u1"], capsys)
    assert code == 2 and "the store has no published version yet" in err and "None" not in err, err


def test_recommend_group_says_the_store_holds_no_groups_or_reads_them(tmp_path, capsys, monkeypatch):
    """`recommend --group` on a store published with users only (as `coea run` does) is one clear line naming
    the missing group entries, exit 2; on a store published with group entries it prints the group's list."""
    import logging

    import pandas as pd

    from coea.store import KVStore
    from tests.helpers import run_cli

    monkeypatch.setattr(logging.getLogger("coea"), "handlers", [])  # not an earlier test's (closed) stderr
    users = pd.DataFrame({"user_id": ["u1"], "rank": [1], "category": ["a"], "score": [0.9]})
    with KVStore(tmp_path / "users.sqlite") as kv:
        kv.publish(users)
    code, out, err = run_cli(["recommend", "--store", str(tmp_path / "users.sqlite"), "--group", "0"], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "holds no group entries" in err and "--user" in err
    groups = pd.DataFrame({"group_id": ["3-1"], "rank": [1], "category": ["b"], "score": [0.7]})
    with KVStore(tmp_path / "both.sqlite") as kv:
        kv.publish(users, groups)
    code, out, err = run_cli(["recommend", "--store", str(tmp_path / "both.sqlite"), "--group", "3-1"], capsys)
    assert code == 0, err
    assert [r["category"] for r in json.loads(out)["recommendations"]] == ["b"]
