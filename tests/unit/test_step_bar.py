"""The trainers' step bar only on a terminal. With transformers' ``disable_tqdm=None`` the bar followed the log
level, and at INFO a pipeline step (stderr a file) wrote every bar update as its own line: 1,160 of the 1,656 lines
of a default `coea run`'s steps.log in session 52."""

import io
import os
import sys

from coea.llm.trainer_output import no_step_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_step_bar_where_stderr_is_a_file_or_pipe(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert no_step_bar() is True


def test_the_step_bar_stays_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert no_step_bar() is False


def test_an_sft_run_at_info_level_writes_no_bar_to_a_file_stderr(tmp_path, capfd):
    """A tiny SFT at transformers' INFO verbosity (where its own rule turned the bar on) with stderr captured (a
    file, as in a pipeline step): no tqdm update reaches it."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coea.llm.sft import train_sft
    from coea.llm.sft_config import SftTrainConfig
    from tests.helpers import tiny_causal_lm

    torch.set_num_threads(1)
    path = tiny_causal_lm(tmp_path / "m", ["recent:", "a", "b", ";", "novel:", "d"])
    examples = [{"prompt": "recent: a b ; novel:", "completion": " d </s>"}] * 8
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    capfd.readouterr()  # the fixture model's own save and load bars
    before = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_info()
    try:
        train_sft(SftTrainConfig(epochs=1, batch_size=4, logging_steps=1, seed=0), model, tokenizer, examples)
    finally:
        transformers.logging.set_verbosity(before)
    err = capfd.readouterr().err
    assert "it/s]" not in err and "s/it]" not in err and "%|" not in err, err[-500:]


def test_a_dpo_round_writes_no_reference_bar_to_a_file_stderr(tmp_path, capfd, monkeypatch):
    """trl's DPOTrainer draws its "Computing reference log probs" bar by ``TQDM_DISABLE`` alone (not disable_tqdm):
    17 lines of `make demo`'s steps.log in session 52. Off a terminal the training sets it, and restores it after."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coea.llm.dpo import train_dpo
    from coea.llm.dpo_config import DpoTrainConfig
    from tests.helpers import tiny_causal_lm

    torch.set_num_threads(1)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    path = tiny_causal_lm(tmp_path / "m", ["recent:", "a", "b", ";", "novel:", "d", "e"])
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    pairs = [{"prompt": "recent: a b ; novel:", "chosen": " d </s>", "rejected": " e </s>"}] * 8
    capfd.readouterr()
    train_dpo(DpoTrainConfig(epochs=1, batch_size=4, logging_steps=1, precompute_ref=True), model, tokenizer, pairs,
              ref_model=copy.deepcopy(model))
    err = capfd.readouterr().err
    assert "Computing reference log probs" not in err and "it/s]" not in err, err[-500:]
    assert "TQDM_DISABLE" not in os.environ  # restored: a bar outside the training is left alone
