"""A typo in a config key, a section or a method name gets "did you mean ...?" and a short line (session 43
walkthrough: ``pco: {rouds: 2}`` gave a 600-character line listing ~30 keys and no hint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coea.config import load_run_config
from coea.errors import CoeaInputError
from coea.evaluation.registry import parse_method
from tests.helpers import run_cli


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        load_run_config(path)
    return str(caught.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("pco: {rouds: 2}\n", " [pco]: unknown key 'rouds' (did you mean 'rounds'?)"),
    ("split: {n_futur: 5}\n", " [split]: unknown key 'n_futur' (did you mean 'n_future'?)"),
    ("llm:\n  novelty: {lr: 3e-3, epoch: 2}\n", " [llm].novelty: unknown key 'epoch' (did you mean 'epochs'?)"),
    ("pco: {Rounds: 2}\n", " [pco]: unknown key 'Rounds' (did you mean 'rounds'?)"),
    ("evl: {ks: [5]}\n", ": unknown section 'evl' (did you mean 'eval'?)"),
])
def test_a_config_typo_names_the_close_key_and_does_not_list_every_key(tmp_path, text, expected):
    message = config_error(tmp_path, text)
    assert message == f"{tmp_path / 'c.yaml'}{expected}", message
    assert "known keys" not in message and "known sections" not in message


def test_a_key_with_nothing_close_lists_the_known_keys(tmp_path):
    message = config_error(tmp_path, "split: {zzzzzz: 1, n_futur: 2}\n")
    assert (" [split]: unknown keys 'zzzzzz', 'n_futur' (did you mean 'n_future'?); known keys are min_gap, "
            "min_history, n_future, n_short, short_window, validation") in message or \
        (" [split]: unknown keys 'n_futur' (did you mean 'n_future'?), 'zzzzzz'; known keys are min_gap, "
         "min_history, n_future, n_short, short_window, validation") in message, message


def test_a_section_with_nothing_close_lists_the_sections(tmp_path):
    message = config_error(tmp_path, "qqqqqq: {}\n")
    assert "unknown section 'qqqqqq'; known sections are data, dsie, eval, llm, pco, split, synthetic" in message


@pytest.mark.parametrize(("name", "fix"), [
    ("markov+X", "did you mean 'markov+x'? ('+x' is the only suffix)"),
    ("sasrec+y", "did you mean 'sasrec+x'? ('+x' is the only suffix)"),
    ("nllm-sft", "did you mean 'nllm_sft'?"),
    ("SASRec", "did you mean 'sasrec'?"),
])
def test_a_method_typo_names_the_close_registered_method(name, fix):
    with pytest.raises(CoeaInputError) as caught:
        parse_method(name)
    assert caught.value.fix == fix
    assert "choose from" not in str(caught.value)


def test_a_method_with_nothing_close_lists_the_methods():
    with pytest.raises(CoeaInputError, match=r"unknown method 'zzzz' \(fix: choose from coea, coea_dual, .*sasrec, "
                                             r"sasrec_ease, each optionally with the suffix '\+x'\)"):
        parse_method("zzzz")


def test_the_cli_prints_one_short_line_for_a_config_key_typo(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("pco: {rouds: 2}\n")
    code, _, err = run_cli(["evaluate", "--config", str(path), "--out", str(tmp_path / "out")], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "unknown key 'rouds' (did you mean 'rounds'?)" in errors[0]
    assert len(errors[0]) < 200, errors[0]


def test_the_cli_suggests_for_a_methods_option_typo(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", "--methods", "pop,markov+X", "--out", str(tmp_path / "out")], capsys)
    assert code == 2, err
    assert "option --methods: unknown method 'markov+X' (fix: did you mean 'markov+x'?" in err, err
