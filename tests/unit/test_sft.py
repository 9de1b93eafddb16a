"""trl SFT through our wrapper: the loss falls, parameters change, only the completion is trained."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

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
