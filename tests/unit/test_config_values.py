"""Reading a run config: duplicate keys, sections that are not mappings, the section path of a range error, seeds
numpy can take, enum and scheduler typos, and the example a list field's error suggests. Every error is one line
naming the file and the key, raised when the file is read (before anything trains)."""

import logging
import re

import pytest

from coea.config import load_run_config
from coea.errors import CoeaInputError


def _load(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path, lambda: load_run_config(path)


@pytest.mark.parametrize(("text", "key", "first", "line"), [
    ("split:\n  n_future: 3\neval: {bootstrap: 50}\nsplit:\n  min_history: 2\n", "split", 1, 4),
    ("split:\n  n_future: 3\n  min_history: 2\n  n_future: 10\n", "n_future", 2, 4),
    ("pco: {dpo: {epochs: 1, epochs: 2}}\n", "epochs", 1, 1),
])
def test_a_key_given_twice_is_refused_naming_file_key_and_line(tmp_path, text, key, first, line):
    """YAML keeps the last of two equal keys, silently dropping the first (a whole section for ``split:`` twice)."""
    path, load = _load(tmp_path, text)
    with pytest.raises(CoeaInputError, match=rf"key '{key}' is given twice .*\(first at line {first}\)") as err:
        load()
    assert err.value.source == str(path) and err.value.line == line and err.value.fix
    assert str(err.value).startswith(f"{path}, line {line}: ") and "\n" not in str(err.value)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    _, load = _load(tmp_path, "x: &base {n_future: 3, min_history: 2}\n")
    with pytest.raises(ValueError, match="unknown section"):  # parsed fine: only the section name is unknown
        load()
    path = tmp_path / "m.yaml"
    path.write_text("split: {<<: {n_future: 3, min_history: 2}, n_future: 4}\n")
    cfg = load_run_config(path)
    assert (cfg.split.n_future, cfg.split.min_history) == (4, 2)


def test_the_cli_prints_a_duplicate_key_once_with_exit_2(tmp_path, capsys):
    from tests.helpers import run_cli

    path, _ = _load(tmp_path, "split: {n_future: 3}\nsplit: {n_future: 4}\n")
    code, out, err = run_cli(["data", "stats", "--data", "synthetic", "--config", str(path)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"{path}, line 2: key 'split' is given twice" in err and err.count(str(path)) == 1, err


@pytest.mark.parametrize("value", ["0", "false", '""', "[]", "5", '"n_future=3"', "[1, 2]"])
def test_a_section_that_is_not_a_mapping_is_refused(tmp_path, value):
    """Only a missing or null section means the defaults; ``split: 0`` used to be read as the defaults too, and
    ``split: "n_future=3"`` listed its letters as unknown keys."""
    path, load = _load(tmp_path, f"split: {value}\n")
    with pytest.raises(ValueError, match=r"\[split\] must be a section \(a mapping of keys\), got ") as err:
        load()
    assert str(err.value).startswith(f"{path} [split] must be a section") and "\n" not in str(err.value)


def test_a_null_or_missing_section_is_the_defaults(tmp_path):
    from coea.config import RunConfig

    _, load = _load(tmp_path, "split:\neval: null\n")
    cfg = load()
    assert cfg.split == RunConfig().split and cfg.eval == RunConfig().eval


@pytest.mark.parametrize(("text", "message"), [
    ("pco: {relevance_refresh: {batch_size: 0}}", r" \[pco\].relevance_refresh: batch_size must be > 0, got 0"),
    ("pco: {novelty_refresh: {batch_size: 0}}", r" \[pco\].novelty_refresh: batch_size must be > 0, got 0"),
    ("llm: {relevance: {lr: 0}}", r" \[llm\].relevance: lr must be > 0, got 0"),
    ("dsie: {rqvae: {batch_size: 0}}", r" \[dsie\].rqvae: batch_size must be > 0, got 0"),
    ("eval: {bootstrap: 0}", r" \[eval\]: bootstrap must be a positive number"),
    ("dsie: {group: {depth: 4}}", r" \[dsie\]: group depth 4 > RQ-VAE levels 3"),  # the section's own check
])
def test_a_range_error_names_its_section_path(tmp_path, text, message):
    """``batch_size`` is a key of eight sections: the error says which one."""
    path, load = _load(tmp_path, text + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load()
    assert str(err.value).startswith(f"{path} [") and "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("synthetic: {seed: 4294967296}", r"\[synthetic\]: seed must be in 0 .. 4294967295, got 4294967296"),
    ("eval: {seed: 99999999999999}", r"\[eval\]: seed must be in 0 .. 4294967295"),
    ("dsie: {encoder: {seed: 4294967296}}", r"\[dsie\].encoder: seed must be in 0 .. 4294967295"),
    ("dsie: {rqvae: {seed: 4294967296}}", r"\[dsie\].rqvae: seed must be in"),
    ("dsie: {seed: 4294967296}", r"\[dsie\]: seed must be in"),
    ("llm: {model: {seed: 4294967296}}", r"\[llm\].model: seed must be in"),
    ("llm: {data: {seed: 4294967296}}", r"\[llm\].data: seed must be in"),
    ("llm: {novelty: {seed: 4294967296}}", r"\[llm\].novelty: seed must be in"),
    ("pco: {rounds: 2, seed: 4294967295}", r"\[pco\]: seed must be in 0 .. 4294967293, got 4294967295: .*seed \+ r"),
    ("pco: {rounds: 3, dpo: {seed: 4294967293}}", r"\[pco\]: dpo.seed must be in 0 .. 4294967292"),
    ("pco: {relevance_refresh: {seed: 4294967295}}", r"\[pco\]: relevance_refresh.seed must be in"),
])
def test_a_seed_numpy_cannot_take_is_refused(tmp_path, text, message):
    """numpy seeds are 0 .. 2**32 - 1; PCO's round r seeds with seed + r."""
    _, load = _load(tmp_path, text + "\n")
    with pytest.raises(ValueError, match=message):
        load()


def test_the_largest_seeds_numpy_takes_are_accepted(tmp_path):
    _, load = _load(tmp_path, "synthetic: {seed: 4294967295}\npco: {rounds: 2, seed: 4294967293}\n")
    cfg = load()
    assert (cfg.synthetic.seed, cfg.pco.seed) == (2**32 - 1, 2**32 - 3)


@pytest.mark.parametrize(("text", "message"), [
    ("data: {category_level: firts}", r"\[data\]: category_level must be one of \['full', 'first'\], got 'firts'"),
    ("llm: {novelty: {precision: bf61}}", r"\[llm\].novelty: precision must be one of \['auto', 'fp32', 'bf16'\]"),
    ("pco: {dpo: {precision: half}}", r"\[pco\].dpo: precision must be one of .*got 'half'"),
    ("dsie: {profile: {kind: gpt}}", r"\[dsie\].profile: kind must be one of \['template', 'llm'\], got 'gpt'"),
    ("llm: {data: {novelty_target: novel}}", r"\[llm\].data: novelty_target must be one of \['recent', 'user'\]"),
    ("llm: {propose: best}", r"\[llm\]: propose must be one of \['top', 'sample'\], got 'best'"),
])
def test_an_enum_typo_names_the_key_and_the_choices(tmp_path, text, message):
    _, load = _load(tmp_path, text + "\n")
    with pytest.raises(ValueError, match=message):
        load()


@pytest.mark.parametrize("section", ["llm: {novelty: {lr_scheduler: cosin}}", "llm: {relevance: {lr_scheduler: cosin}}",
                                     "pco: {relevance_refresh: {lr_scheduler: cosin}}",
                                     "pco: {novelty_refresh: {lr_scheduler: cosin}}"])
def test_an_unknown_lr_scheduler_is_refused_when_the_config_is_read(tmp_path, section):
    """It used to pass and crash inside transformers after the DSIE stage had run."""
    _, load = _load(tmp_path, section + "\n")
    with pytest.raises(ValueError, match=r"lr_scheduler must be one of \['linear', 'cosine', .*got 'cosin'"):
        load()


def test_the_scheduler_names_are_transformers_own():
    """The config keeps the names as a static tuple (no transformers import to read a config): they must be exactly
    the values of transformers' SchedulerType, and the default one of them."""
    from transformers import SchedulerType

    from coea.llm.sft_config import LR_SCHEDULERS, SftTrainConfig

    assert set(LR_SCHEDULERS) == {m.value for m in SchedulerType} and len(set(LR_SCHEDULERS)) == len(LR_SCHEDULERS)
    assert SftTrainConfig().lr_scheduler in LR_SCHEDULERS


@pytest.mark.parametrize(("text", "message"), [
    ('eval: {methods: "pop,markov"}', r"methods must be a list, got 'pop,markov'; write a YAML list, not one "
                                      r"comma-separated text: \[pop, markov\]"),
    ("eval: {ks: 5}", r"ks must be a list, got 5; write e.g. \[5\]"),
    ("eval: {methods: null}", r"methods must be a list, got None; write e.g. \[random, pop, pop_novel\], or leave "
                              r"the key out for the default"),
    ("eval: {ks: null}", r"ks must be a list, got None; write e.g. \[5, 10\]"),
    ("eval: {ks: '5,10'}", r"ks must be a list, got '5,10'; write a YAML list, .*: \[5, 10\]"),
])
def test_a_list_field_suggests_a_list_that_works(tmp_path, text, message):
    _, load = _load(tmp_path, text + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load()
    assert "[None]" not in str(err.value) and "['pop,markov']" not in str(err.value)


SMALL_LOG = "synthetic: {n_users: 40, n_categories: 14, n_groups: 3, mean_interactions: 40, items_per_category: 5}\n"


@pytest.mark.parametrize(("section", "key", "shown"), [
    ("eval: {methods: [pop], ks: [5, 100]}\n", "eval.ks", "[5, 100] has K=100"),
    ("eval: {methods: [pop, coea]}\npco: {k: 500}\n", "pco.k", "500 has K=500"),
])
def test_a_cutoff_above_the_categories_is_refused_before_any_training(tmp_path, capsys, monkeypatch, section, key,
                                                                      shown):
    """`eval.ks: [5, 100]` on a 14-category log reported C-H@100 = 1.0 and NCP@100 = 0.07 on lists of at most 14
    (and `pco.k: 500` per-round metrics alike): refused right after the data step, before DSIE/SFT/PCO."""
    from coea import flow, stages
    from tests.helpers import run_cli

    monkeypatch.setattr(logging.getLogger("coea"), "handlers", [])  # the CLI's log handler on this test's stderr
    ran = []
    for name in ("run_prepare_data", "run_dsie_group"):  # the staged data step and DSIE (flow.staged_data)
        real_stage = getattr(stages, name)
        monkeypatch.setattr(stages, name, lambda *a, _f=real_stage, _n=name, **kw: ran.append(_n) or _f(*a, **kw))
    real = flow._run_step  # every later step (SFT, PCO, evaluate)
    monkeypatch.setattr(flow, "_run_step", lambda step, *a: ran.append(step) or real(step, *a))
    path, _ = _load(tmp_path, SMALL_LOG + section)
    code, _, err = run_cli(["evaluate", "--config", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and f"option {key}: {shown} above the 14 categories of the log" in err, err
    assert "fix: set" in err and f"at most 14, e.g. {key}: " in err and "Traceback" not in err
    assert ran == ["run_prepare_data"] and not (tmp_path / "out").exists()


def test_a_cutoff_equal_to_the_categories_is_fine():
    """K = the number of categories ranks every category: legitimate on a small log; K above it is not."""
    from coea.config import RunConfig, check_cutoffs

    cfg = load_run_config(None)
    check_cutoffs(cfg, 10, pco=True)  # defaults: ks [5, 10], pco.k 10
    check_cutoffs(RunConfig(), 4, ks=False)  # pco.k not checked when PCO does not run
    with pytest.raises(CoeaInputError, match=r"\[5, 10\] has K=10 above the 9 categories.*eval.ks: \[5, 9\]"):
        check_cutoffs(cfg, 9)
    with pytest.raises(CoeaInputError, match=r"option pco.k: 10 has K=10 above the 9 categories.*pco.k: 9"):
        check_cutoffs(cfg, 9, ks=False, pco=True)


@pytest.mark.parametrize(("text", "argv", "expected"), [
    ("eval: {methods: [pop, markvo]}\n", [],
     "{path}: eval.methods: unknown method 'markvo' (fix: did you mean 'markov'?)"),
    ("eval: {methods: [pop, markvo]}\n", ["--methods", "pop"], "{path}: eval.methods: unknown method 'markvo'"),
    ("eval: {methods: [pop]}\n", ["--methods", "pop,markvo"], "option --methods: unknown method 'markvo'"),
    ("data: {spec: 'cvs:/x.csv'}\n", [],
     "{path}: data.spec: unknown data spec 'cvs:/x.csv' (fix: did you mean csv:/x.csv?)"),
    ("eval: {methods: [pop]}\n", ["--data", "cvs:/x.csv"], "option --data: unknown data spec 'cvs:/x.csv'"),
    ("eval: {methods: [pop, markov+x], reference: markov+x}\n", ["--methods", "pop,markov"],
     "{path}: eval.reference 'markov+x' is not among the methods of --methods pop,markov (fix: add markov+x to "
     "--methods, pass --reference"),
    ("device: cuda\n", [], "{path}: device 'cuda' requested but CUDA is not available "
                           "(fix: set device: cpu (or auto) in {path}, or pass --device cpu)"),  # the fix said once
    ("eval: {methods: [pop]}\n", ["--device", "cuda"], "option --device: device 'cuda' requested but CUDA"),
], ids=["methods", "methods-overridden", "methods-option", "spec", "spec-option", "reference", "device",
        "device-option"])
def test_a_bad_config_value_names_the_file_and_key_and_a_bad_option_the_option(tmp_path, capsys, monkeypatch,
                                                                               text, argv, expected):
    """A config file's method typo said `option --methods`, its data spec typo `option --data` (no file named), its
    eval.reference left out by --methods `invalid option value ... (fix: see --help)`, its `device: cuda` without
    CUDA `option device (config)`. Each now names the file and the key; a value from the command line still names
    its option. All before the data step: nothing is written."""
    import torch

    from tests.helpers import run_cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path, _ = _load(tmp_path, text)
    code, _, err = run_cli(["evaluate", "--config", str(path), *argv, "--out", str(tmp_path / "out")], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: " + expected.format(path=path)), err
    assert "(config)" not in errors[0] and not (tmp_path / "out").exists()


def test_max_position_embeddings_below_a_max_length_is_refused_naming_both_keys(tmp_path):
    """`llm.model.max_position_embeddings: 16` (the scratch model's longest prompt + completion) was accepted with
    the SFT's max_length 192; PCO's DPO and refreshes train the same model."""
    _, load = _load(tmp_path, "llm: {model: {max_position_embeddings: 160}, novelty: {max_length: 128}}\n")
    with pytest.raises(ValueError, match=r"max_position_embeddings 160 is below llm.relevance.max_length 192, "
                                         r"pco.dpo.max_length 192.*at least 192") as err:
        load()
    assert "llm.novelty.max_length" not in str(err.value)
    _, load = _load(tmp_path, "llm: {model: {max_position_embeddings: 192}}\n")
    assert load().llm.model.max_position_embeddings == 192  # equal is enough
    _, load = _load(tmp_path, "llm: {model: {base_model: /models/x, max_position_embeddings: 16}}\n")
    assert load().llm.model.max_position_embeddings == 16  # scratch only: a pretrained model has its own


def test_window_days_on_a_single_file_is_a_warning_naming_the_key(tmp_path, monkeypatch):
    """`data.window_days: 7` on one CSV file (not a dt= partition folder, README 'Data') was ignored without a word."""
    from coea.config import DataConfig
    from coea.data import sources
    from coea.data.loaders import load_data

    said = []
    monkeypatch.setattr(sources.log, "warning", lambda fmt, *args: said.append(fmt % args))
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,category,timestamp\n1,a,x,1600000000\n2,b,y,1600000100\n")
    assert len(load_data(DataConfig(spec=f"csv:{path}")).interactions) == 2 and not said  # 0: nothing to say
    assert len(load_data(DataConfig(spec=f"csv:{path}", window_days=7)).interactions) == 2  # read whole, as before
    assert len(said) == 1 and said[0].startswith(f"data.window_days=7 is ignored: {path} is a single file, not a "
                                                 "folder of dt=YYYY-MM-DD/ partitions")


def test_as_of_on_a_single_file_is_a_warning_and_a_schedule_s_time_is_not(tmp_path, monkeypatch):
    """Session 55: `--as-of` (data.as_of) on one CSV file was ignored without a word. Set by the user it is warned
    about; the time a scheduled pipeline run passes to its prepare step is not (a single file is read whole at
    every scheduled time), and neither is recorded as the period's as-of time."""
    from coea.config import DataConfig, RunConfig
    from coea.data import sources
    from coea.data.loaders import load_data
    from coea.stages.prepare import run_prepare_data

    said = []
    monkeypatch.setattr(sources.log, "warning", lambda fmt, *args: said.append(fmt % args))
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,category,timestamp\n1,a,x,1600000000\n2,b,y,1600000100\n")
    assert len(load_data(DataConfig(spec=f"csv:{path}", as_of="2020-09-13")).interactions) == 2  # read whole
    assert len(said) == 1 and said[0].startswith(f"data.as_of=2020-09-13 is ignored: {path} is a single file, "
                                                 "not a folder of dt=YYYY-MM-DD/ partitions")
    said.clear()
    scheduled = run_prepare_data(RunConfig(data=DataConfig(spec=f"csv:{path}")), tmp_path / "sched",
                                 scheduled_time="2020-09-13T00:00:00Z")
    assert scheduled.stats["interactions"] == 2 and scheduled.as_of is None and not said
    explicit = run_prepare_data(RunConfig(data=DataConfig(spec=f"csv:{path}", as_of="2020-09-13")),
                                tmp_path / "explicit", scheduled_time="2020-09-14T00:00:00Z")
    assert explicit.as_of is None and len(said) == 1 and "data.as_of=2020-09-13 is ignored" in said[0]


def test_a_config_that_is_not_utf8_names_its_line_not_the_codec(tmp_path):
    """Session 52: a UTF-16 or latin-1 config gave Python's own "'utf-8' codec can't decode byte 0xff in position
    0" wording."""
    from coea.config_values import read_yaml

    utf16 = tmp_path / "a.yaml"
    utf16.write_bytes("split: {n_future: 5}\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"a.yaml: not UTF-8 text at line 1 \(it starts like UTF-16\); save it as"):
        read_yaml(utf16)
    latin = tmp_path / "b.yaml"
    latin.write_bytes("split:\n  n_future: 5  # café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"b.yaml: not UTF-8 text at line 2; save it as UTF-8"):
        read_yaml(latin)


@pytest.mark.parametrize(("value", "shown"), [
    (99999999999999999999999, "99999999999999999999999"),
    (2**63, "9223372036854775808"),
    (-2**63 - 1, "-9223372036854775809"),
    (1e19, "1e+19"),  # YAML's 1.0e+19: a float
    ("1e19", "1e19"),  # YAML 1.1 reads 1e19 (no dot) as text
    (-1e19, "-1e+19"),
])
def test_a_whole_number_beyond_int64_is_refused_not_rounded_through_a_float(value, shown):
    """Session 52: `n_future: 99999999999999999999999` became 99999999999999991611392 without a word. Audit: written
    as a float (`1e19`, `1.0e+19`) it skipped the range check, so `eval: {bootstrap: 1e19}` ran the whole evaluation
    and then crashed in the bootstrap."""
    from coea.config_values import typed_value

    with pytest.raises(ValueError, match=rf"n_future must fit a 64-bit integer, got {re.escape(shown)}; write a"):
        typed_value("n_future", int, value)


def test_the_whole_numbers_int64_holds_are_kept_exactly():
    from coea.config_values import typed_value

    assert typed_value("seed", int, 2**62 + 1) == 2**62 + 1  # exact, not 2**62 through a float
    assert typed_value("n", int, 2**63 - 1) == 2**63 - 1 and typed_value("n", int, -2**63) == -2**63
    assert typed_value("n", int, 9.2e18) == 9_200_000_000_000_000_000 and typed_value("n", int, "-9e18") == -9 * 10**18
    assert typed_value("n_future", int, "10") == 10 and typed_value("lr", float, "1e-3") == 1e-3  # YAML 1.1 text


def test_eval_bootstrap_has_a_bound_a_run_can_reach():
    """Audit: `eval: {bootstrap: 1e19}` was read, ran the whole evaluation, then crashed in bootstrap.py."""
    from coea.config import MAX_BOOTSTRAP, EvalConfig

    assert EvalConfig(bootstrap=MAX_BOOTSTRAP).bootstrap == 1_000_000
    with pytest.raises(ValueError, match=r"bootstrap must be at most 1,000,000 replicates .*got 1000001; e.g. 2000"):
        EvalConfig(bootstrap=MAX_BOOTSTRAP + 1)


@pytest.mark.parametrize(("alpha", "expected"), [
    ("0.4", "option --alpha: alpha 0.4 does not fit the config's pco section: reference none needs update distill "
            "with dpo.alpha 0"),
    ("-1", "option --alpha: must be >= 0, got -1.0"),
])
def test_pco_alpha_is_checked_against_the_whole_pco_section(tmp_path, capsys, monkeypatch, alpha, expected):
    """Audit: `coea pco --alpha` set pco.dpo in place, so PcoConfig's cross-checks never ran: `--alpha 0.4` under
    `pco.reference: none` (which needs alpha 0) reached the PCO stage. It is exit 2 naming --alpha, before the stage."""
    from coea import stages
    from tests.helpers import run_cli

    ran = []
    monkeypatch.setattr(stages, "run_pco_stage", lambda *a, **kw: ran.append(kw))
    for part in ("data", "dsie", "llm"):
        (tmp_path / "run" / part).mkdir(parents=True)
    path, _ = _load(tmp_path, "pco: {reward: teacher, update: distill, reference: none, dpo: {alpha: 0}}\n")
    code, out, err = run_cli(["pco", "--run", str(tmp_path / "run"), "--config", str(path), "--device", "cpu",
                              "--alpha", alpha], capsys)
    assert code == 2 and f"error: {expected}" in err and len(err.strip().splitlines()) == 1, err
    assert "(fix: " in err and not ran and "Traceback" not in err


@pytest.mark.parametrize(("text", "expected"), [
    ("split: {n_future: 2.5}\n", "[split]: n_future must be a whole number, got 2.5 (fix: write e.g. 2)"),
    ("dsie: {rqvae: {input_dim: 64}}\n", "[dsie]: rqvae.input_dim 64 is not encoder.dim 32: the RQ-VAE reads the "
                                         "encoder's user embeddings (fix: leave rqvae.input_dim out (it follows "
                                         "encoder.dim))"),
    ("split:\n\tn_future: 2\n", "not valid YAML at line 2, column 1: found character '\\t' that cannot start any token "
                                "(fix: indent with spaces (no tabs) and close every { [ and quote)"),
    ("splitt: {}\n", "unknown section 'splitt' (did you mean 'split'?) (fix: fix the YAML; see README "
                     "'Configuration')"),
    ("split: {qqqq: 1}\n", "[split]: unknown key 'qqqq'; known keys are min_gap, min_history, n_future, n_short, "
                           "short_window, validation (fix: fix the YAML; see README 'Configuration')"),  # no fix
])
def test_a_config_error_s_own_fix_is_the_fix_said_once(tmp_path, text, expected):
    """Audit: the generic "(fix: fix the YAML; see README 'Configuration')" followed errors that end with their own
    fix ("...; write e.g. 2 (fix: fix the YAML ...)"); an error without one keeps the generic fix. Audit, item 8:
    `dsie.rqvae.input_dim` set apart from `dsie.encoder.dim` was silently replaced by it."""
    from coea.cli.common import load_config

    path, _ = _load(tmp_path, text)
    with pytest.raises(CoeaInputError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {expected}"


def test_rqvae_input_dim_follows_the_encoder_unless_set_to_it():
    from coea.config import run_config_from_dict

    assert run_config_from_dict({"dsie": {"encoder": {"dim": 16}}}, where="t").dsie.rqvae.input_dim == 16
    assert run_config_from_dict({"dsie": {"encoder": {"dim": 16}, "rqvae": {"input_dim": 16}}},
                                where="t").dsie.rqvae.input_dim == 16
    assert run_config_from_dict({"dsie": {"rqvae": {"input_dim": None}}}, where="t").dsie.rqvae.input_dim == 32
