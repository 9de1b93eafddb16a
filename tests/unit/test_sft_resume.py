"""SFT checkpoints: a training killed after a checkpoint and started again with the same settings and examples
resumes at the checkpoint's step and ends with the weights of an uninterrupted training (every weight trained, or
a LoRA adapter); a checkpoint of other
settings or examples, or one a kill cut short, is not resumed from; the folder goes when the training ends."""

import logging
import warnings
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from coea.llm.sft import TRAINER_STATE, SftCheckpoints, complete_checkpoint, train_sft
from coea.llm.sft_config import SftTrainConfig
from coea.llm.trainer_output import GRADIENT_CHECKPOINTING_DEPRECATED
from tests.helpers import tiny_causal_lm

WORDS = ["group:", "<a_1>", "recent:", "a", "b", "c", ";", "novel:", "d", "e"]
EXAMPLES = [{"prompt": "group: <a_1> recent: a b ; novel:", "completion": " d e </s>"},
            {"prompt": "group: <a_1> recent: c ; novel:", "completion": " e </s>"},
            {"prompt": "group: <a_1> recent: b c ; novel:", "completion": " d </s>"}] * 8
# a checkpoint after every step (any positive interval shorter than a step)
CFG = SftTrainConfig(epochs=2, batch_size=4, logging_steps=2, lr=5e-3, checkpoint_minutes=1e-9, seed=3)


class Preempted(Exception):
    pass


@pytest.fixture(params=["full", "lora"])
def fresh(tmp_path, request):
    """A function returning the same untrained tiny model (and its tokenizer) on every call: every weight
    trainable, or a LoRA adapter (with dropout: the resumed RNG states matter) on the frozen model."""
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(1)
    path = tiny_causal_lm(tmp_path / "m", WORDS)

    def build():
        model = AutoModelForCausalLM.from_pretrained(path)
        if request.param == "lora":
            torch.manual_seed(0)  # the adapter's initial weights
            with warnings.catch_warnings():  # peft asks the model the deprecated is_gradient_checkpointing
                warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_DEPRECATED, category=FutureWarning)
                model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.1,
                                                         target_modules=["q_proj", "v_proj"]))
        return model, AutoTokenizer.from_pretrained(path)

    return build


def _killed_at(step: int):
    def on_save(folder):
        if folder.name == f"checkpoint-{step}":
            raise Preempted  # the process is gone right after this checkpoint was written
    return on_save


def test_a_killed_training_resumes_from_its_checkpoint_and_ends_with_the_uninterrupted_weights(fresh, tmp_path,
                                                                                                  caplog):
    model, tok = fresh()
    whole = train_sft(CFG, model, tok, EXAMPLES)  # no checkpoints
    folder = tmp_path / "ck"
    with pytest.raises(Preempted):
        train_sft(CFG, *fresh(), EXAMPLES, checkpoints=SftCheckpoints(folder, "key", _killed_at(4)))
    assert complete_checkpoint(folder).name == "checkpoint-4"  # a logging step: the loss windows align
    assert [p.name for p in folder.glob("checkpoint-*")] == ["checkpoint-4"]  # only the last is kept

    steps: list[int] = []
    caplog.set_level(logging.INFO, logger="coea")
    again, tok = fresh()
    resumed = train_sft(CFG, again, tok, EXAMPLES,
                        checkpoints=SftCheckpoints(folder, "key", lambda f: steps.append(int(f.name.split("-")[1]))))
    assert f"llm sft: resuming from step 4 (checkpoint {folder / 'checkpoint-4'})" in caplog.messages
    assert steps == list(range(5, 12))  # saves after the resumed step only; none at the last step (12)
    assert resumed.steps == whole.steps == 12 and not folder.exists()
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-5)  # the log history continues the checkpoint's
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("change", ["settings", "examples", "last label", "key"])
def test_a_checkpoint_of_other_settings_or_examples_is_discarded_with_a_warning(fresh, tmp_path, caplog, change):
    folder = tmp_path / "ck"
    with pytest.raises(Preempted):
        train_sft(CFG, *fresh(), EXAMPLES, checkpoints=SftCheckpoints(folder, "key", _killed_at(3)))
    cfg, examples, key = CFG, EXAMPLES, "key"
    if change == "settings":
        cfg = replace(CFG, lr=1e-3)
    elif change == "examples":
        examples = EXAMPLES[1:]
    elif change == "last label":  # the same prompts, the last answer changed (audit, session 55: a hash of the
        last = EXAMPLES[-1]  # prompts alone passed)
        examples = [*EXAMPLES[:-1], {**last, "completion": " e </s>" if last["completion"] != " e </s>" else " d </s>"}]
    else:
        key = "another model"
    saves: list[str] = []
    caplog.set_level(logging.INFO, logger="coea")
    train_sft(cfg, *fresh(), examples, checkpoints=SftCheckpoints(folder, key, lambda f: saves.append(f.name)))
    assert any("was written for other settings or examples; it is discarded" in m for m in caplog.messages)
    assert not any("resuming" in m for m in caplog.messages) and saves[0] == "checkpoint-1"


def test_only_the_interval_changed_still_resumes(fresh, tmp_path, caplog):
    folder = tmp_path / "ck"
    with pytest.raises(Preempted):
        train_sft(CFG, *fresh(), EXAMPLES, checkpoints=SftCheckpoints(folder, "key", _killed_at(2)))
    caplog.set_level(logging.INFO, logger="coea")
    train_sft(replace(CFG, checkpoint_minutes=60), *fresh(), EXAMPLES, checkpoints=SftCheckpoints(folder, "key"))
    assert any(m.startswith("llm sft: resuming from step 2") for m in caplog.messages)


def test_a_checkpoint_without_its_trainer_state_is_not_complete(tmp_path):
    for step in (4, 8, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (4, 8):
        (tmp_path / f"checkpoint-{step}" / TRAINER_STATE).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert complete_checkpoint(tmp_path).name == "checkpoint-8"  # 12: a save a kill cut short
    assert complete_checkpoint(tmp_path / "checkpoint-12") is None


def test_no_checkpoint_folder_without_checkpoints_or_with_the_interval_at_zero(fresh, tmp_path):
    folder = tmp_path / "ck"
    train_sft(replace(CFG, checkpoint_minutes=0), *fresh(), EXAMPLES, checkpoints=SftCheckpoints(folder, "key"))
    assert not folder.exists()
    with pytest.raises(ValueError, match="checkpoint_minutes must be >= 0"):
        replace(CFG, checkpoint_minutes=-1)
