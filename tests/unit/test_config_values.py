"""Reading a run config: duplicate keys, sections that are not mappings, the section path of a range error, seeds
numpy can take, enum and scheduler typos, and the example a list field's error suggests. Every error is one line
naming the file and the key, raised when the file is read (before anything trains)."""

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
