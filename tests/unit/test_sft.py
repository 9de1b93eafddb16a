"""trl SFT through our wrapper: the loss falls, parameters change, only the completion is trained."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from coea.errors import CoeaInputError
from coea.llm.sft import train_sft
from coea.llm.sft_config import SftTrainConfig
from tests.helpers import tiny_causal_lm

WORDS = ["group:", "<a_1>", "recent:", "a", "b", "c", ";", "novel:", "d", "e"]
EXAMPLES = [{"prompt": "group: <a_1> recent: a b ; novel:", "completion": " d e </s>"},
            {"prompt": "group: <a_1> recent: c ; novel:", "completion": " e </s>"}] * 24


@pytest.fixture
def tiny(tmp_path):
    torch.set_num_threads(1)
    path = tiny_causal_lm(tmp_path / "m", WORDS)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _completion_logprob(model, tok, prompt, completion):
    ids = tok(prompt + completion, return_tensors="pt")["input_ids"]
    n_prompt = len(tok(prompt)["input_ids"])
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)[0, :-1]
    target = ids[0, 1:]
    return float(logp[torch.arange(len(target)), target][n_prompt - 1:].sum())


def test_sft_lowers_loss_and_changes_parameters(tiny):
    model, tok = tiny
    before = copy.deepcopy(model.state_dict())
    lp_before = _completion_logprob(model, tok, EXAMPLES[0]["prompt"], EXAMPLES[0]["completion"])
    res = train_sft(SftTrainConfig(epochs=3, batch_size=8, logging_steps=3, lr=5e-3), model, tok, EXAMPLES)
    assert res.steps == 18 and res.losses[-1] < res.losses[0]  # 48 examples / 8 x 3 epochs
    changed = sum(float((before[k] - v).abs().sum()) for k, v in model.state_dict().items())
    assert changed > 0
    lp_after = _completion_logprob(model, tok, EXAMPLES[0]["prompt"], EXAMPLES[0]["completion"])
    assert lp_after > lp_before + 1.0  # the target completion became much more likely


def test_max_examples_subsamples_and_empty_data_fails(tiny):
    model, tok = tiny
    res = train_sft(SftTrainConfig(epochs=1, batch_size=4, max_examples=8), model, tok, EXAMPLES)
    assert res.n_examples == 8 and res.steps == 2
    with pytest.raises(ValueError, match="no SFT examples"):
        train_sft(SftTrainConfig(), model, tok, [])
    with pytest.raises(CoeaInputError, match="no SFT example fits max_length 4 with its whole completion") as err:
        train_sft(SftTrainConfig(max_length=4), model, tok, EXAMPLES)  # every prompt is longer than 4 tokens
    assert "raise this training's max_length" in str(err.value) and "\n" not in str(err.value)
    longest = max(len(tok(e["prompt"] + e["completion"])["input_ids"]) for e in EXAMPLES)  # completions end in EOS
    assert f"to {longest} to keep every example" in str(err.value)  # the length that keeps them all, measured
    res = train_sft(SftTrainConfig(epochs=1, batch_size=4, max_length=longest), model, tok, EXAMPLES)
    assert res.n_examples == len(EXAMPLES)


def test_tokenized_rows_are_those_trl_prepares(tiny, tmp_path):
    """Our batched tokenization gives exactly the rows trl's SFTTrainer builds from the raw prompt/completion data:
    EOS appended where missing, -100 on the prompt, rows without a trained token dropped, and a prompt shared by
    two examples (tokenized once) labelled right for each; except that a row whose completion trl cuts at
    max_length (keep-start truncation) is dropped: a name cut short would teach another name (session 55 audit)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from coea.llm.sft import tokenize_examples

    model, tok = tiny
    examples = [*EXAMPLES[:2], {"prompt": "group: <a_1> recent: a ; novel:", "completion": " d e"},  # no EOS
                {"prompt": "group: " + "a b c " * 6 + "novel:", "completion": " d </s>"},  # prompt fills max_length
                {"prompt": "recent: c c ; novel:", "completion": " d e d e d e d e </s>"},  # completion cut
                {"prompt": "recent: a ; novel:", "completion": " b </s>"},  # one prompt, two targets (split targets)
                {"prompt": "recent: a ; novel:", "completion": " c e"}]
    max_length = 12
    ours = tokenize_examples(tok, examples, max_length, chunk=2)  # chunks of 2: the chunk seams are covered too
    args = SFTConfig(output_dir=str(tmp_path / "o"), max_length=max_length, completion_only_loss=True,
                     report_to="none", save_strategy="no", use_cpu=True, bf16=False)
    theirs = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                        processing_class=tok).train_dataset
    assert len(theirs) == 6  # the prompt that fills max_length leaves no completion token: dropped
    cut = [i for i, ids in enumerate(theirs["input_ids"]) if len(ids) == max_length and ids[-1] != tok.eos_token_id]
    assert cut == [3] and theirs["labels"][3][-1] != -100  # trl keeps it, cut inside the completion
    keep = [i for i in range(len(theirs)) if i not in cut]
    assert len(ours) == 5 and ours["input_ids"] == [theirs["input_ids"][i] for i in keep]
    assert ours["labels"] == [theirs["labels"][i] for i in keep]
    assert ours["input_ids"][2][-1] == tok.eos_token_id


FREEZE_SCRIPT = """
import gc, sys, weakref
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from coea.llm.sft import train_sft
from coea.llm.sft_config import SftTrainConfig
from tests.unit.test_sft import EXAMPLES
torch.set_num_threads(1)
model, tok = AutoModelForCausalLM.from_pretrained(sys.argv[1]), AutoTokenizer.from_pretrained(sys.argv[1])
assert gc.get_freeze_count() == 0
train_sft(SftTrainConfig(epochs=1, batch_size=8), model, tok, EXAMPLES)
frozen = gc.get_freeze_count()
kept = [[] for _ in range(10_000)]  # would join a second freeze
train_sft(SftTrainConfig(epochs=1, batch_size=8), model, tok, EXAMPLES)
ref = weakref.ref(model)
del model
gc.collect()
print(frozen, gc.get_freeze_count(), ref() is None)
"""


def test_the_first_training_freezes_the_import_heap_once_and_a_model_frozen_with_it_is_still_freed(tmp_path):
    """The trainers' own gc.collect() calls skip the imported libraries' objects (coea.utils.freeze_gc_heap): the
    first training of a fresh process freezes its heap, a second freezes nothing more, and the model that was alive
    (so frozen) at the first is still freed once dropped: no model leaks. A child process, so the freeze is its
    first (this worker's happened at its own first training)."""
    import subprocess
    import sys

    from tests.helpers import REPO

    path = tiny_causal_lm(tmp_path / "m", WORDS)
    res = subprocess.run([sys.executable, "-c", FREEZE_SCRIPT, str(path)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    first, second, freed = res.stdout.splitlines()[-1].split()  # the trainer prints its own lines first
    assert int(first) > 50_000 and int(second) <= int(first)  # frozen once (frozen objects can still be freed)
    assert freed == "True"


def spy_labelled_positions(monkeypatch, module) -> list[bool]:
    """Wrap ``module.labelled_positions_only`` (as the trainer module imported it) so that, inside the block, every
    answer trl's ``_use_triton`` gives is recorded: a trainer that skipped the block, or a trl that no longer asks,
    leaves the list empty."""
    import contextlib

    from trl.trainer import utils as trl_utils

    real, asked = module.labelled_positions_only, []

    @contextlib.contextmanager
    def spying(device):
        with real(device):
            patched = trl_utils._use_triton

            def recorded(dev):
                asked.append(bool(patched(dev)))
                return asked[-1]

            trl_utils._use_triton = recorded
            try:
                yield
            finally:
                trl_utils._use_triton = patched

    monkeypatch.setattr(module, "labelled_positions_only", spying)
    return asked


def test_scoring_only_the_labelled_positions_on_the_cpu_trains_the_same_model(tiny, monkeypatch):
    """``labelled_positions_only``: trl's output layer scores only the completion's positions on the CPU (as on a
    GPU): the same loss over the same positions, so the same steps move the weights the same way; trl's own choice
    is back after the block."""
    import contextlib

    from trl.trainer import utils as trl_utils

    from coea import device as coea_device
    from coea.llm import sft

    model, tok = tiny
    cpu = torch.device("cpu")
    assert not trl_utils._use_triton(cpu)  # trl's own CPU choice: score every position
    with coea_device.labelled_positions_only("cpu"):
        assert trl_utils._use_triton(cpu)
    with coea_device.labelled_positions_only("cuda:0"):  # a GPU keeps trl's own choice
        assert not trl_utils._use_triton(cpu)
    assert not trl_utils._use_triton(cpu)
    cfg = SftTrainConfig(epochs=1, batch_size=8, logging_steps=1, lr=5e-3)
    other = copy.deepcopy(model)
    asked = spy_labelled_positions(monkeypatch, sft)
    compact = train_sft(cfg, model, tok, EXAMPLES)
    assert asked and all(asked)  # train_sft enters the block, and trl's loss asks it (and is told yes) while training
    monkeypatch.setattr(sft, "labelled_positions_only", lambda device: contextlib.nullcontext())
    every = train_sft(cfg, other, tok, EXAMPLES)
    assert compact.steps == every.steps == 6 and compact.losses == pytest.approx(every.losses, rel=1e-5)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_training_writes_no_log_dicts_to_stdout_and_logs_them_at_debug(tiny, capsys, caplog, monkeypatch):
    """transformers' progress callback wrote every log dict (``{'loss': '2.615', 'grad_norm': ...}``,
    ``{'train_runtime': ...}``) to stdout, ahead of ``coea evaluate``'s metrics table: they go to the ``coea`` log
    at DEBUG instead, and no gradient_checkpointing FutureWarning (trl's default, not our argument) is shown."""
    import logging
    import warnings

    model, tok = tiny
    # the records reach caplog only: a console handler another in-process test left on `coea` would print the DEBUG
    # dicts to stderr itself (the CLI's own handler is at INFO)
    monkeypatch.setattr(logging.getLogger("coea"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("coea"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="coea.llm.sft")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        train_sft(SftTrainConfig(epochs=1, batch_size=8, logging_steps=3), model, tok, EXAMPLES)
    out, err = capsys.readouterr()
    assert out == ""
    assert "{'loss'" not in err and "train_runtime" not in err
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("'train_runtime'" in m for m in debug) and any("'loss'" in m for m in debug)
    assert not [w for w in shown if "gradient_checkpointing" in str(w.message)], [str(w.message) for w in shown]


def test_the_log_line_names_the_mean_loss_and_the_last_step_is_logged(tiny, caplog):
    """``coea train-llms`` logged trainer's mean over the training as "final train loss"; and a training whose step
    count is no multiple of logging_steps never logged its end (36 steps at logging_steps 20: first loss = last
    loss). 6 steps at logging_steps 4 log steps 4 and 6; the line names the mean and the last logged loss."""
    import logging

    model, tok = tiny
    caplog.set_level(logging.INFO, logger="coea.llm.sft")
    res = train_sft(SftTrainConfig(epochs=1, batch_size=8, logging_steps=4), model, tok, EXAMPLES)
    assert res.steps == 6 and len(res.losses) == 2
    steps = [r.getMessage() for r in caplog.records if "llm sft step" in r.getMessage()]
    assert [m.split()[3] for m in steps] == ["4/6", "6/6"]
    (summary,) = [r.getMessage() for r in caplog.records if "examples, 6 steps" in r.getMessage()]
    assert "mean train loss" in summary and f"last logged loss {res.losses[-1]:.4f}" in summary
    assert "final train loss" not in summary


def test_most_examples_left_out_by_max_length_is_an_error_naming_the_length_that_keeps_them(tiny):
    """The examples a max_length keeps are those of the shortest histories, not a sample: a pretrained base's
    tokenizer under the default prompt kept 6 % of MovieLens' N-LLM examples at 192 tokens (session 57). Half kept
    trains (with a warning); fewer is one line naming the length that keeps every example."""
    model, tok = tiny
    long, short = EXAMPLES[0], EXAMPLES[1]
    fits_short = len(tok(short["prompt"] + short["completion"])["input_ids"])
    whole = len(tok(long["prompt"] + long["completion"])["input_ids"])
    assert fits_short < whole
    cfg = SftTrainConfig(epochs=1, batch_size=2, max_length=fits_short)
    assert train_sft(cfg, copy.deepcopy(model), tok, [short, long] * 2).n_examples == 2  # 2 of 4 kept: trains
    with pytest.raises(CoeaInputError, match=f"only 1 of 4 SFT examples fit max_length {fits_short}") as err:
        train_sft(cfg, copy.deepcopy(model), tok, [short, long, long, long])
    assert f"to {whole} to keep every example" in str(err.value) and "\n" not in str(err.value)
