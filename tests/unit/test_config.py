"""Config dataclasses: validation and YAML round-trip."""

import json
from dataclasses import replace

import pytest

from coea.config import EvalConfig, RunConfig, SplitConfig, SyntheticConfig, load_run_config, save_config


def test_post_init_rejects_bad_values():
    with pytest.raises(ValueError, match="n_future must be > 0, got 0"):
        SplitConfig(n_future=0)
    with pytest.raises(ValueError, match="explore_rate"):
        SyntheticConfig(explore_rate=1.5)
    with pytest.raises(ValueError, match="ks must be positive"):
        EvalConfig(ks=[0])


def test_yaml_sections_and_unknown_keys(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("split:\n  n_future: 3\neval:\n  methods: [pop, markov]\n  ks: [10, 5]\n")
    cfg = load_run_config(good)
    assert cfg.split.n_future == 3 and cfg.eval.ks == [5, 10] and cfg.data.spec == "synthetic"
    bad = tmp_path / "b.yaml"
    bad.write_text("split:\n  n_futur: 3\n")
    with pytest.raises(ValueError, match=r"unknown key 'n_futur' \(did you mean 'n_future'\?\)"):
        load_run_config(bad)
    bad.write_text("splitt: {}\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_run_config(bad)


def test_a_partial_nested_section_keeps_its_fields_own_defaults(tmp_path):
    """``llm.relevance`` and ``pco.relevance_refresh`` default to other values than a bare SftTrainConfig (a lower
    rate, a cap): setting one key must not silently reset the others to the bare class's."""
    from coea.llm.sft_config import LlmConfig
    from coea.pco.config import PcoConfig

    f = tmp_path / "c.yaml"
    f.write_text("llm:\n  relevance: {batch_size: 64}\npco:\n  relevance_refresh: {epochs: 2}\n")
    cfg = load_run_config(f)
    assert cfg.llm.relevance == LlmConfig().relevance.__class__(**{**vars(LlmConfig().relevance), "batch_size": 64})
    assert cfg.llm.relevance.lr == 1e-3 and cfg.llm.relevance.max_examples == 100_000
    refresh = PcoConfig().relevance_refresh
    assert (cfg.pco.relevance_refresh.epochs, cfg.pco.relevance_refresh.max_examples,
            cfg.pco.relevance_refresh.warmup_ratio) == (2, refresh.max_examples, refresh.warmup_ratio)
    assert cfg.llm.novelty == LlmConfig().novelty  # untouched sections stay the defaults


def test_save_config_is_json(tmp_path):
    save_config(RunConfig(), tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["data"]["category_level"] == "full" and saved["split"]["n_short"] == 10


def test_eval_config_paired_ci_options():
    from coea.config import EvalConfig

    cfg = EvalConfig(methods=["pop", "markov+x"], reference="markov+x", bootstrap=500, ci_level=0.9)
    assert (cfg.reference, cfg.bootstrap, cfg.ci_level) == ("markov+x", 500, 0.9)
    assert EvalConfig().reference is None and EvalConfig().bootstrap == 2000 and EvalConfig().ci_level == 0.95
    with pytest.raises(ValueError, match="reference 'pop_novel' is not among the methods"):
        EvalConfig(methods=["pop"], reference="pop_novel")
    with pytest.raises(ValueError, match="bootstrap must be a positive number"):
        EvalConfig(bootstrap=0)
    with pytest.raises(ValueError, match="ci_level must be in"):
        EvalConfig(ci_level=1.0)


def test_presets_are_packaged_and_load_by_name(tmp_path):
    """``--config gpu`` / ``--config cpu`` name packaged YAML files; cpu is exactly the built-in defaults, gpu the
    larger scratch LLMs on every example; a file of the same name in the working directory wins."""
    from pathlib import Path

    from coea.config import PRESETS, config_to_dict, preset_path

    for name in PRESETS:
        assert preset_path(name).is_file()
    assert preset_path("nope") is None
    assert config_to_dict(load_run_config(Path("cpu"))) == config_to_dict(RunConfig())
    gpu = load_run_config(Path("gpu"))
    assert (gpu.llm.model.hidden_size, gpu.llm.model.num_layers) == (256, 4)
    assert gpu.llm.relevance.max_examples is None and gpu.pco.users_per_round is None
    assert gpu.llm.novelty.batch_size == 256 and gpu.llm.novelty.precision == "fp32"
    distil = load_run_config(Path("distil"))
    assert distil.llm.novelty_bonus == 4.0 and RunConfig().llm.novelty_bonus == 0.0  # session 51, RULE51-LAM
    short = load_run_config(Path("short"))
    assert short.llm.novelty_bonus == 3.0  # session 52, RULE52-SVLAM
    assert (short.split.n_future, short.split.min_history, short.llm.data.with_group) == (2, 2, False)
    assert (short.llm.data.sequence, short.llm.data.items) == (10, 0)  # session 44: items cost; session 53: seq: pays
    assert (short.llm.novelty.epochs, short.llm.novelty.lr, short.llm.encoder_weight) == (8.0, 1e-3, 1.0)
    assert (short.pco.periods, short.pco.users_per_round, short.pco.reward, short.pco.update) == (
        "user", None, "teacher", "distill")  # session 46: the distill update, the served fusion as its target
    assert (short.pco.teacher_weight, short.pco.teacher_cooc_weight, short.pco.dpo.beta) == (2.0, 2.0, 2.0)
    assert short.pco.teacher_weight / short.pco.dpo.beta == short.llm.encoder_weight  # the target = the fusion
    assert short.pco.teacher_cooc_weight / short.pco.dpo.beta == short.llm.cooc_weight
    assert (short.pco.candidates, short.pco.propose, short.pco.dpo.epochs, short.pco.dpo.alpha) == (
        None, "top", 20.0, 0.0)
    for name in ("pairs_per_prompt", "refresh_relevance"):
        assert getattr(short.pco, name) == getattr(distil.pco, name), name
    assert (short.pco.dpo.lr, short.pco.dpo.nll) == (distil.pco.dpo.lr, distil.pco.dpo.nll)
    assert (short.dsie.encoder.target, short.dsie.encoder.item_input) == ("next", False)  # session 44
    default = config_to_dict(RunConfig().dsie)
    default["encoder"].update(target="next", item_input=False)
    assert config_to_dict(short.dsie) == default  # only what short histories need
    assert (distil.llm.data.sequence, distil.pco.reward, distil.pco.teacher_weight) == (50, "teacher", 4.0)
    assert (distil.pco.update, distil.pco.candidates, distil.pco.propose) == ("distill", None, "top")  # session 46
    assert distil.pco.teacher_weight / distil.pco.dpo.beta == distil.llm.encoder_weight  # the target = nllm_seq
    assert (distil.pco.dpo.beta, distil.pco.dpo.lr, distil.pco.dpo.nll, distil.pco.dpo.epochs) == (2.0, 5e-4, 0.0, 20.0)
    assert distil.pco.dpo.alpha == short.pco.dpo.alpha == 0.0
    assert config_to_dict(distil.split) == config_to_dict(RunConfig().split)
    local = tmp_path / "gpu"
    local.write_text("eval: {judge_users: 7}\n")
    assert load_run_config(local).eval.judge_users == 7


@pytest.mark.parametrize(("yaml_text", "message"), [
    ('data: {allow_any_timestamp: "no"}', r"\[data\]: allow_any_timestamp must be true or false, got 'no'"),
    ("split: {validation: yes please}", r"validation must be true or false, got 'yes please'"),
    ("split: {n_future: 2.5}", r"n_future must be a whole number, got 2.5; write e.g. 2"),
    ("synthetic: {n_users: true}", r"n_users must be a whole number, got True"),
    ("synthetic: {n_users: fifty}", r"n_users must be a whole number, got 'fifty'"),
    ("synthetic: {popularity_exponent: .nan}", r"popularity_exponent must be a finite number, got nan"),
    ("synthetic: {focus_strength: .inf}", r"focus_strength must be a finite number, got inf"),
    ("split: {short_window: .nan}", r"short_window must be a whole number, got nan"),
    ("llm: {cooc_weight: -1}", r"\[llm\]: cooc_weight must be >= 0, got -1.0"),
    ("pco: {teacher_cooc_weight: 1}", r"\[pco\]: teacher_cooc_weight needs reward teacher, got 'feedback'"),
    ("pco: {update: distill}", r"\[pco\]: update distill needs a reward on a log scale: teacher \(nats\) or "
                               r"relevance \(the R-LLM's log-odds\), got 'feedback'"),
    ("pco: {update: distill, reward: serendipity}", r"update distill needs a reward on a log scale.*got 'serendipity'"),
    ("pco: {candidates: null}", r"\[pco\]: candidates null \(every unseen category\) needs propose: top"),
    ("pco: {update: pairs}", r"\[pco\]: update must be one of \['dpo', 'distill'\], got 'pairs'"),
    ("eval: {ks: [5, 5.5]}", r"ks\[1\] must be a whole number, got 5.5"),
    ("eval: {methods: pop}", r"methods must be a list, got 'pop'"),
    ("dsie: {rqvae: {codebook_sizes: 4}}", r"\[dsie\].rqvae: codebook_sizes must be a list, got 4"),
    ("dsie: {encoder: 5}", r"encoder must be a section \(a mapping of keys\), got 5"),
    ("pco: {reward: 3}", r"reward must be text, got 3; one of serendipity, "),
    ("llm: {novelty: {epochs: .nan}}", r"\[llm\].novelty: epochs must be a finite number, got nan"),
    ("llm: {novelty: {lr: 1" + "0" * 400 + "}}", r"\[llm\].novelty: lr must be a finite number, got 10000"),  # no float
    ("pco: {margin: -1" + "0" * 400 + "}", r"\[pco\]: margin must be a finite number, got -10000"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(tmp_path, yaml_text, message):
    """YAML gives strings, floats and NaN where a field wants a bool or a whole number: every field is checked
    against its annotation when the file is read (before anything runs), with one line naming the file and key.
    ``"no"`` is a non-empty string, which Python reads as true: it must not switch a setting on."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load_run_config(path)
    assert str(err.value).startswith(f"{path} [") and "\n" not in str(err.value)


def test_numbers_yaml_reads_as_text_are_numbers_and_dates_are_iso_text(tmp_path):
    """YAML 1.1 reads ``1e-3`` (no dot) and ``1e3`` as strings: they are the numbers they look like; an integral
    float is a whole number; an unquoted date (``as_of``) is its ISO text; null stays null where allowed."""
    path = tmp_path / "c.yaml"
    path.write_text("llm: {novelty: {lr: 1e-3}, verify_weight: null}\nsynthetic: {n_users: 1e3, seed: 3.0}\n"
                    "data: {as_of: 2026-11-30}\n")
    cfg = load_run_config(path)
    assert cfg.llm.novelty.lr == 0.001 and isinstance(cfg.llm.novelty.lr, float)
    assert (cfg.synthetic.n_users, cfg.synthetic.seed) == (1000, 3) and isinstance(cfg.synthetic.n_users, int)
    assert cfg.data.as_of == "2026-11-30" and cfg.llm.verify_weight is None


@pytest.mark.parametrize(("yaml_text", "where"), [
    ("synthetic: {n_users: 50\nsplit: {n_future: 2}\n", "line 2, column 6"),
    ("split:\n\tn_future: 2\n", "line 2, column 1"),
])
def test_a_yaml_syntax_error_is_one_line_naming_the_line_and_exit_2(tmp_path, capsys, yaml_text, where):
    from tests.helpers import run_cli

    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    code, out, err = run_cli(["data", "stats", "--data", "synthetic", "--config", str(path)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"{path}: not valid YAML at {where}" in err and err.count(str(path)) == 1, err


def test_cli_names_the_presets_when_a_config_is_missing(tmp_path):
    from coea.cli.common import load_config
    from coea.errors import CoeaInputError

    with pytest.raises(CoeaInputError, match="cpu, gpu"):
        load_config(tmp_path / "missing.yaml")
    assert load_config(__import__("pathlib").Path("gpu")).llm.model.hidden_size == 256


def test_readme_configuration_block_is_the_built_in_defaults():
    """README 'Configuration' shows every section with its values and says `cpu` is exactly the built-in
    defaults: the block must parse and equal ``RunConfig()`` field for field, ``data.spec`` included (it showed a
    MovieLens spec until session 52: copied as a run config it trained on MovieLens for hours), so a changed
    default that the README still shows the old way fails here."""
    import dataclasses
    from pathlib import Path

    import yaml

    from coea.config import run_config_from_dict

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\ndevice: auto") + len("```yaml\n")
    block = yaml.safe_load(readme[start:readme.index("```", start)])
    assert set(block) == {"device", "data", "synthetic", "split", "eval", "dsie", "llm", "pco"}
    shown = dataclasses.asdict(run_config_from_dict(block, where="README"))
    defaults = dataclasses.asdict(RunConfig())
    assert shown == defaults


def test_every_number_of_the_run_config_refuses_minus_one():
    """No count, rate, weight or seed of the run config means anything below 0 (numpy refuses negative seeds, a
    negative learning rate or weight decay trains backwards): each numeric field, set to -1 alone, is a ValueError
    naming it, so a typo'd sign stops when the config is read, not as a traceback mid-training."""
    import dataclasses
    import types
    import typing

    accepted, checked = [], []

    def walk(obj, where):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{where}.{f.name}")
                continue
            hint = hints[f.name]
            kinds = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(
                hint, types.UnionType) else [hint]
            if kinds[0] in (int, float):
                checked.append(f"{where}.{f.name}")
                try:
                    dataclasses.replace(obj, **{f.name: -1})
                    accepted.append(f"{where}.{f.name}")
                except ValueError as err:
                    assert f.name in str(err), (f.name, str(err))

    walk(RunConfig(), "")
    assert accepted == [] and len(checked) > 120 and ".pco.dpo.lr" in checked and ".split.min_gap" in checked


def test_category_level_first_is_refused_for_a_log_that_is_not_movielens():
    """Session 52: `--category-level first` on a csv:/parquet:/synthetic log was ignored without a word."""
    import pytest

    from coea.config import DataConfig

    for spec in ("csv:log.csv", "parquet:log.parquet", "synthetic"):
        with pytest.raises(ValueError, match=r"category_level 'first' applies to movielens: logs only"):
            DataConfig(spec=spec, category_level="first")
    assert DataConfig(spec="movielens:ml-1m", category_level="first").category_level.value == "first"
    assert DataConfig(spec="csv:log.csv", category_level="full").category_level.value == "full"


def test_a_synthetic_log_too_large_to_build_is_refused_by_the_config():
    """Audit (session 53): `synthetic: {n_users: 1e9}` crashed with numpy's _ArrayMemoryError, exit 1."""
    from coea.config import MAX_SYNTHETIC_EVENTS, SyntheticConfig

    with pytest.raises(ValueError, match="n_users 1000000000 x 60 events .* beyond what the generator builds"):
        SyntheticConfig(n_users=1_000_000_000)
    SyntheticConfig(n_users=MAX_SYNTHETIC_EVENTS // 60)


def test_a_run_s_config_json_round_trips_and_leaves_the_device_to_the_command(tmp_path, monkeypatch):
    """Audit: a run's config.json was read back through the YAML loader, so a column name outside the BMP (JSON
    writes it as a surrogate pair) came back as two lone surrogates; and its ``device`` was inherited, so a run made
    with ``--device cuda`` could not be evaluated --from-run on a CPU (the error said to edit the run's config.json),
    although read_saved_config drops a saved device on purpose. The device is the command's: --device, else auto."""
    import torch

    from coea.cli.common import from_run_config, with_device
    from coea.config import DataConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    made = RunConfig(device="cuda", data=DataConfig(spec="csv:log.csv", user_col="😀", item_col="é\u2028"))
    (tmp_path / "data").mkdir()
    save_config(made, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["device"] == "cuda"
    read = from_run_config(None, tmp_path)
    assert read.data.user_col == "😀" and read == replace(made, device="auto")
    assert with_device(read, None).device == "auto" and with_device(read, "cpu").device == "cpu"


@pytest.mark.parametrize("text", ["", "# nothing to change\n", "---\n"])
def test_an_empty_config_file_is_refused_not_read_as_the_defaults(tmp_path, capsys, text):
    """Audit: an empty (or comment-only) --config silently gave the built-in defaults; for `coea run` that means the
    synthetic log. Leaving --config out says that."""
    from coea.errors import CoeaInputError
    from tests.helpers import run_cli

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CoeaInputError, match=r"empty config: it holds no section .*leave --config out for the"):
        load_run_config(path)
    code, out, err = run_cli(["data", "stats", "--data", "synthetic", "--config", str(path)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {path}: empty config") and err.count("(fix: ") == 1, err


def test_a_file_named_like_a_preset_wins_with_a_warning_and_a_folder_does_not(tmp_path, monkeypatch):
    """Audit: a regular file `./short` silently replaced the `short` preset; a folder `./gpu` made `--config gpu` fail
    with 'is a folder, not a config file (fix: ... name a preset: gpu)'. A regular file wins, naming both; a
    folder is no config file, so the name is the preset's."""
    from pathlib import Path

    from coea import config
    from coea.cli.common import load_config

    said = []
    monkeypatch.setattr(config.log, "warning", lambda fmt, *args: said.append(fmt % args))
    monkeypatch.chdir(tmp_path)
    Path("short").write_text("eval: {judge_users: 7}\n")
    (tmp_path / "gpu").mkdir()
    assert load_config(Path("short")).eval.judge_users == 7 and load_run_config(Path("short")).eval.judge_users == 7
    assert len(said) == 2 and said[0].startswith(f"--config short: reading the file {tmp_path / 'short'} in the "
                                                 "working directory, not the packaged preset short (")
    assert str(config.preset_path("short")) in said[0]
    said.clear()
    assert load_config(Path("gpu")).llm.model.hidden_size == 256 and load_run_config(Path("gpu")) == load_config(
        Path("gpu")) and not said
    assert load_config(Path("distil")).pco.teacher_weight == 4.0 and not said  # nothing of that name here
