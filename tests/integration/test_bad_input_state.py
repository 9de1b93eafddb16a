"""Damaged run folders, state files and stores through the CLI (in process): one ``error:`` line naming the file
and the step to re-run, exit code 2, no traceback and nothing written (audit 8-11, 18, 19)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import coea, run_cli


def _one_error(res) -> str:
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    return errors[0]


def _store(tmp_path: Path, sql: str) -> Path:
    from coea.store import KVStore

    path = tmp_path / "recs.sqlite"
    with KVStore(path) as kv:
        kv.publish(pd.DataFrame({"user_id": ["u1", "u2"], "rank": [1, 1], "category": ["a", "b"],
                                 "score": [0.5, 0.4]}))
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(sql)
        conn.commit()
    return path


@pytest.mark.parametrize(("sql", "words"), [
    ("UPDATE recs SET value = '{bad' WHERE key = 'u1'", "the stored recommendations of user 'u1' are damaged ("),
    ("UPDATE recs SET value = '{\"a\":1}' WHERE key = 'u1'", "are damaged (TypeError: a JSON dict, not a list)"),
    ("UPDATE meta SET value = 'nope' WHERE name = 'active_version'", "the store's active version 'nope' is missing"),
], ids=["not-json", "an-object", "active-version-missing"])
def test_recommend_from_a_damaged_store_is_one_line_saying_re_publish(tmp_path, capsys, sql, words):
    path = _store(tmp_path, sql)
    code, out, err = run_cli(["recommend", "--store", str(path), "--user", "u1"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err, err
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: {path}: ") and words in line and "(fix: re-publish" in line, line


@pytest.mark.parametrize(("text", "words"), [
    ('{"methods": [1, 2]}', "not a metrics file: 'methods' is not an object of method -> scores"),
    ('{"methods": {"pop": {"C-H@10": 0.5}', "cannot be read (JSONDecodeError"),
    ("[]", "not a metrics file: a JSON list, not an object"),
], ids=["methods-a-list", "truncated", "a-list"])
def test_report_of_a_run_with_a_damaged_metrics_json_is_an_error_naming_it(tmp_path, capsys, text, words):
    (tmp_path / "metrics.json").write_text(text)
    code, _, err = run_cli(["report", "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and "Traceback" not in err, err
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: {tmp_path / 'metrics.json'}: {words}") and "re-run `coea evaluate" in line, line
    assert not (tmp_path / "report.html").exists()


def _pco_state(run: Path, completed: int) -> None:
    """A state for the run's config (what `coea pco` would compare) marking ``completed`` rounds complete."""
    from coea.config import load_run_config
    from coea.pco.checkpoint import write_state

    cfg = load_run_config(run / "config.json")
    pco = cfg.pco.resolve_refresh_novelty(cfg.llm.data.holdout_share > 0)
    write_state(run / "pco", completed, [{"round": r} for r in range(completed + 1)], pco)


def test_pco_resume_from_a_damaged_state_is_one_line_before_any_model_loads(tiny_sft_run, tmp_path):
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    (run / "pco").mkdir()
    (run / "pco" / "pco_state.json").write_text("[]")
    line = _one_error(coea("pco", "--run", str(run), "--resume"))
    assert line == (f"error: {run / 'pco' / 'pco_state.json'}: not a PCO state: a JSON list, not an object with "
                    "completed_rounds, rounds and config (fix: re-run `coea pco` without --resume to write the rounds "
                    "again)")
    _pco_state(run, 2)  # round 2 marked complete, its checkpoint never written
    res = coea("pco", "--run", str(run), "--resume")
    assert _one_error(res) == (f"error: {run / 'pco' / 'rounds' / 'round_002'}: pco_state.json marks round 2 complete "
                               "but its checkpoint lacks novelty, relevance, rng.pt (fix: re-run `coea pco` without "
                               "--resume to write the rounds again)")
    assert "pco round 0 eval" not in res.stderr  # refused before the models load and round 0 is scored
    assert not (run / "pco" / "pco_metrics.json").exists()


def test_serve_with_groups_missing_their_group_id_column_is_one_line(tiny_sft_run, tmp_path):
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    groups = run / "dsie" / "groups.parquet"
    pd.read_parquet(groups).drop(columns=["group_id"]).to_parquet(groups)
    out = tmp_path / "o.parquet"
    line = _one_error(coea("serve", "--run", str(run), "--method", "group_pop_novel", "--k", "3", "--out", str(out)))
    assert line.startswith(f"error: {groups}, column 'group_id': missing column (have: user_id, csid, cold_start)")
    assert "re-run `coea group`" in line and not out.exists()


def test_serve_to_a_csv_name_is_refused_before_anything_is_read(tiny_sft_run, tmp_path):
    """Session 52: `--out recs.csv` wrote a Parquet file under a CSV name (exit 0)."""
    out = tmp_path / "recs.csv"
    line = _one_error(coea("serve", "--run", str(tiny_sft_run), "--method", "group_pop_novel", "--out", str(out)))
    assert line == (f"error: {out}, option --out: names a .csv file, but serve writes Parquet (fix: pass "
                    f"{tmp_path / 'recs.parquet'} (pandas.read_parquet reads it))")
    assert not out.exists() and not (tmp_path / "recs.parquet").exists()


def test_serve_on_a_run_whose_data_was_replaced_by_another_log_is_refused(tiny_sft_run, tmp_path):
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    log = run / "data" / "interactions.parquet"
    events = pd.read_parquet(log)
    events.assign(user_id="z" + events["user_id"].astype(str)).to_parquet(log, index=False)
    out = tmp_path / "o.parquet"
    line = _one_error(coea("serve", "--run", str(run), "--method", "group_pop_novel", "--k", "3", "--out", str(out)))
    assert line == (f"error: {run / 'dsie'}: it was fitted on another log than the data/ beside it "
                    "(interactions.parquet changed since) (fix: re-run `coea group` for this run)")
    assert not out.exists()


def test_pco_served_lists_of_other_users_are_refused_naming_the_file(tiny_sft_run, tmp_path):
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    served = tmp_path / "served.parquet"
    pd.DataFrame({"user_id": ["zz1", "zz2"], "rank": [1, 1], "category": ["x", "y"],
                  "score": [0.5, 0.4]}).to_parquet(served)
    line = _one_error(coea("pco", "--run", str(run), "--served", str(served)))
    assert line.startswith(f"error: {served}, option --served: served lists of another log: none of its 2 users is "
                           "in the log (e.g. zz1, zz2; ")
    assert not (run / "pco").exists()


def test_a_corrupt_dsie_lineage_record_is_named_damaged(tiny_sft_run, tmp_path):
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    record = run / "dsie" / "lineage.json"
    record.write_text(record.read_text()[:20])
    out = tmp_path / "o.parquet"
    line = _one_error(coea("serve", "--run", str(run), "--method", "group_pop_novel", "--out", str(out)))
    assert line == (f"error: {record}: damaged: not a lineage record (unreadable, not JSON, or fields of the wrong "
                    "type) (fix: re-run `coea group` for this run)")
    assert json.loads((tiny_sft_run / "dsie" / "lineage.json").read_text())  # the shared fixture is untouched
