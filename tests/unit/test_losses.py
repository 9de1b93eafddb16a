"""dpo_kl_loss: hand values, alpha = 0 equals trl's DPOTrainer loss exactly, KL grows as the policy moves."""

import copy

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOTrainer

from coea.llm.dpo import DpoKlTrainer, DpoTrainConfig, dpo_args, train_dpo
from coea.llm.losses import dpo_kl_loss, k3_kl
from tests.helpers import tiny_causal_lm

WORDS = ["group:", "<a_1>", "recent:", "a", "b", "c", ";", "novel:", "d", "e", "f"]
PAIRS = [{"prompt": "group: <a_1> recent: a b ; novel:", "chosen": " d </s>", "rejected": " e </s>"},
         {"prompt": "group: <a_1> recent: c ; novel:", "chosen": " f </s>", "rejected": " d </s>"}] * 8


def test_hand_values():
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-2.5, -1.0])
    out = dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.0)
    # delta = (0.5 - (-0.5), 0 - 0) = (1, 0) -> -log sigmoid(0.5), -log sigmoid(0)
    expected = torch.tensor([-torch.log(torch.sigmoid(torch.tensor(0.5))), torch.log(torch.tensor(2.0))])
    assert torch.allclose(out.dpo, expected)
    assert torch.allclose(out.margins, torch.tensor([0.5, 0.0]))
    # k3(x) = e^x - 1 - x: pair 0 has log ratios +0.5 and -0.5, pair 1 has 0 and 0
    k = lambda x: torch.exp(torch.tensor(x)) - 1 - x  # noqa: E731
    assert torch.allclose(out.kl, torch.stack([(k(0.5) + k(-0.5)) / 2, torch.tensor(0.0)]))
    with_kl = dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.4)
    assert torch.allclose(with_kl.loss, out.loss + 0.4 * out.kl.mean())


def test_nll_weight_adds_the_chosen_per_token_nll():
    pc, pr = torch.tensor([-1.0, -6.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-2.5, -1.0])
    base = dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.4)
    assert base.nll is None
    out = dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.4, nll=0.5, chosen_tokens=torch.tensor([1, 3]))
    assert torch.allclose(out.nll, torch.tensor([1.0, 2.0]))  # -log pi(y_w) / |y_w|
    assert torch.allclose(out.loss, base.loss + 0.5 * 1.5)
    with pytest.raises(ValueError, match="chosen_tokens"):
        dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.4, nll=0.5)
    with pytest.raises(ValueError, match="nll"):
        dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.4, nll=-1.0, chosen_tokens=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="nll"):
        DpoTrainConfig(nll=-0.1)


def test_alpha_zero_is_sigmoid_dpo_and_kl_grows_with_distance():
    g = torch.Generator().manual_seed(0)
    ref_c, ref_r = -torch.rand(16, generator=g) * 5, -torch.rand(16, generator=g) * 5
    pol_c, pol_r = ref_c + torch.randn(16, generator=g), ref_r + torch.randn(16, generator=g)
    out = dpo_kl_loss(pol_c, pol_r, ref_c, ref_r, beta=0.1, alpha=0.0)
    assert torch.equal(out.loss, (-F.logsigmoid(0.1 * ((pol_c - ref_c) - (pol_r - ref_r)))).mean())
    losses = [float(dpo_kl_loss(pol_c, pol_r, ref_c, ref_r, beta=0.1, alpha=a).loss) for a in (0.0, 0.1, 0.4, 0.6)]
    assert losses == sorted(losses) and losses[-1] > losses[0]
    kls = [float(dpo_kl_loss(ref_c + s, ref_r - s, ref_c, ref_r, beta=0.1, alpha=1.0).kl.mean())
           for s in (0.0, 0.5, 1.0, 2.0)]
    assert kls[0] == 0.0 and kls == sorted(kls) and kls[-1] > kls[1]
    assert bool((k3_kl(torch.linspace(-50, 50, 101)) >= 0).all())
    with pytest.raises(ValueError, match="alpha"):
        dpo_kl_loss(pol_c, pol_r, ref_c, ref_r, beta=0.1, alpha=-1.0)


@pytest.fixture
def tiny(tmp_path):
    torch.set_num_threads(1)
    path = tiny_causal_lm(tmp_path / "m", WORDS)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _batch_losses(model, ref, tok, tmp_path, alpha):
    """The loss of trl's DPOTrainer and of ours on the same first batch, with the same reference."""
    from datasets import Dataset

    cfg = DpoTrainConfig(batch_size=4, precompute_ref=False)
    data = Dataset.from_list(PAIRS)
    theirs = DPOTrainer(model=model, ref_model=ref, args=dpo_args(cfg, str(tmp_path / "a")), train_dataset=data,
                        processing_class=tok)
    ours = DpoKlTrainer(model=model, ref_model=ref, args=dpo_args(cfg, str(tmp_path / "b")), train_dataset=data,
                        processing_class=tok, kl_alpha=alpha)
    batch = next(iter(theirs.get_train_dataloader()))
    with torch.no_grad():
        return theirs.compute_loss(model, batch), ours.compute_loss(model, batch)


def test_alpha_zero_equals_trl_dpo_trainer_exactly(tiny, tmp_path):
    model, tok = tiny
    ref = copy.deepcopy(model)
    with torch.no_grad():  # move the policy away from the reference so the loss is not log 2
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    trl_loss, our_loss = _batch_losses(model, ref, tok, tmp_path, alpha=0.0)
    assert float(trl_loss) != pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-4)
    assert torch.equal(trl_loss, our_loss)
    _, with_kl = _batch_losses(model, ref, tok, tmp_path, alpha=0.6)
    assert float(with_kl) > float(our_loss)


def _logp(model, tok, prompt, completion):
    ids = tok(prompt + completion, return_tensors="pt")["input_ids"]
    n = len(tok(prompt)["input_ids"])
    with torch.no_grad():
        lp = model(ids).logits.log_softmax(-1)[0, :-1]
    return float(lp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][n - 1:].sum())


def _dpo_trained(model, tok, **cfg):
    """(policy, result): a copy of ``model`` after 16 DPO steps on PAIRS (reference: another copy), ``cfg`` overriding
    ``alpha`` / ``nll``."""
    policy, ref = copy.deepcopy(model), copy.deepcopy(model)
    dpo_cfg = DpoTrainConfig(epochs=4, batch_size=4, lr=5e-3, beta=1.0, logging_steps=4, **cfg)
    return policy, train_dpo(dpo_cfg, policy, tok, PAIRS, ref_model=ref)


def test_train_dpo_prefers_chosen_and_kl_holds_it_back(tiny):
    model, tok = tiny
    p = PAIRS[0]
    gaps = {}
    before = _logp(model, tok, p["prompt"], p["chosen"]) - _logp(model, tok, p["prompt"], p["rejected"])
    for alpha in (0.0, 5.0):
        policy, res = _dpo_trained(model, tok, alpha=alpha)
        after = _logp(policy, tok, p["prompt"], p["chosen"]) - _logp(policy, tok, p["prompt"], p["rejected"])
        assert res.steps == 16 and res.last("rewards/margins") > 0
        gaps[alpha] = (after - before, res.last("kl"))
    assert gaps[0.0][0] > 1.0  # plain DPO: chosen became much more likely relative to rejected
    assert gaps[5.0][0] < gaps[0.0][0] / 2 and gaps[5.0][1] < gaps[0.0][1] / 2  # KL restrains the move


def test_nll_term_keeps_the_chosen_likely(tiny):
    """Plain DPO may lower the chosen completion's likelihood while widening the margin; the NLL term raises it."""
    model, tok = tiny
    p = PAIRS[0]
    chosen = {}
    for nll in (0.0, 2.0):
        policy, res = _dpo_trained(model, tok, alpha=0.0, nll=nll)
        chosen[nll] = _logp(policy, tok, p["prompt"], p["chosen"])
        assert (res.last("nll") is None) == (nll == 0.0)
    assert chosen[2.0] > chosen[0.0] + 0.5


def test_lora_policy_is_compared_with_its_adapter_as_it_was_at_the_start(tiny):
    """A LoRA policy without ``ref_model`` is compared with trl's frozen copy of its adapter at the start of
    training (a ``ref`` adapter), not with the base model: its adapters are made non-zero first (fresh LoRA B
    matrices are zero, which would make the two one model), and the first step's implicit reward beta (log pi -
    log ref) of the chosen completions is then 0, where the base model as reference would make it far from 0
    (checked below with the adapters switched off); training still moves the margin up."""
    model, tok = tiny
    with pytest.raises(ValueError, match="explicit ref_model"):
        train_dpo(DpoTrainConfig(), model, tok, PAIRS)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    ids = tok(PAIRS[0]["prompt"] + PAIRS[0]["chosen"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        on = lora(ids).logits
        with lora.disable_adapter():
            off = lora(ids).logits
    assert (on - off).abs().max() > 0.1  # the adapter changes the model: the base would be another reference
    res = train_dpo(DpoTrainConfig(epochs=2, batch_size=4, lr=5e-3, beta=1.0, alpha=0.4, logging_steps=1), lora, tok,
                    PAIRS)
    assert res.steps == 8 and res.last("rewards/margins") > 0
    assert res.history[0]["rewards/chosen"] == pytest.approx(0.0, abs=1e-6), res.history[0]


def test_soft_preference_labels_have_their_optimum_at_the_label_logit():
    """p = 1 is the plain loss; the soft loss is smallest where beta * delta = logit(p) (a finite shift)."""
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-2.5, -1.0])
    plain = dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.1)
    hard = dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.1, preference=torch.ones(2))
    assert torch.allclose(plain.loss, hard.loss) and torch.allclose(plain.dpo, hard.dpo)
    p = torch.tensor([0.7, 0.3])
    delta = torch.zeros(2, requires_grad=True)
    opt = torch.optim.LBFGS([delta], max_iter=100)

    def closure():
        opt.zero_grad()
        loss = dpo_kl_loss(rc + delta, rr, rc, rr, beta=0.5, alpha=0.0, preference=p).dpo.sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(0.5 * delta.detach(), torch.logit(p), atol=1e-4)  # where hard labels have no minimum
    with pytest.raises(ValueError, match="preference"):
        dpo_kl_loss(pc, pr, rc, rr, beta=0.5, alpha=0.0, preference=torch.tensor([1.2, 0.5]))


def test_train_dpo_reads_the_soft_labels(tiny):
    """The pairs' ``preference`` reaches the loss: at p = 0.5 the policy (= reference at the start) has no gradient
    and stays as it was; at p = 1 (the same pairs) it moves."""
    model, tok = tiny
    moved = {}
    for p in (0.5, 1.0):
        policy, ref = copy.deepcopy(model), copy.deepcopy(model)
        pairs = [{**pair, "preference": p} for pair in PAIRS]
        train_dpo(DpoTrainConfig(epochs=1, batch_size=4, lr=5e-3, beta=1.0, alpha=0.0, nll=0.0), policy, tok, pairs,
                  ref_model=ref)
        moved[p] = sum(float((a - b).abs().sum()) for a, b in zip(policy.parameters(), model.parameters(),
                                                                  strict=True))
    assert moved[0.5] < 1e-6 < moved[1.0] / 1000


@pytest.mark.parametrize(("n_pairs", "expected"), [(None, 10), (100, 8), (5, 2), (10_000, 10)])
def test_a_round_shorter_than_logging_steps_logs_its_last_step(tmp_path, n_pairs, expected) -> None:
    """pco_metrics.json had dpo_margin null after a round that updated (6 steps under logging_steps 10), which
    the report reads as 'no update': the logging interval is capped at the round's step count (100 pairs at batch
    32, 2 epochs: 8 steps; 5 pairs: 2)."""
    cfg = DpoTrainConfig(logging_steps=10, batch_size=32, epochs=2.0)
    assert dpo_args(cfg, str(tmp_path), n_pairs=n_pairs).logging_steps == expected


def test_pairs_whose_prompt_fills_max_length_are_refused_before_the_trainer(tiny, tmp_path):
    """trl drops a pair whose prompt fills max_length and fails on none left (``torch.cat(): expected a non-empty
    list of Tensors``): train_dpo refuses that with one line naming pco.dpo.max_length, and counts the pairs kept
    exactly as trl does."""
    from datasets import Dataset

    from coea.errors import CoeaInputError
    from coea.llm.dpo import pairs_within

    model, tok = tiny
    with pytest.raises(CoeaInputError, match=r"no DPO pair's prompt fits within max_length 4") as err:
        train_dpo(DpoTrainConfig(max_length=4), copy.deepcopy(model), tok, PAIRS, ref_model=copy.deepcopy(model))
    assert "pco.dpo.max_length" in str(err.value) and "\n" not in str(err.value)
    whole = max(len(tok(p["prompt"] + p[side])["input_ids"]) for p in PAIRS for side in ("chosen", "rejected"))
    assert f"(to {whole} to keep every pair whole)" in str(err.value)
    short = len(tok(PAIRS[1]["prompt"])["input_ids"])  # the second prompt is one token shorter than the first
    most = [PAIRS[1], PAIRS[0], PAIRS[0]]  # at max_length `short` + 1 only the second prompt's pair is kept: 1 of 3
    with pytest.raises(CoeaInputError, match=rf"only 1 of 3 DPO pairs have a prompt within max_length {short + 1} "):
        train_dpo(DpoTrainConfig(max_length=short + 1), copy.deepcopy(model), tok, most,
                  ref_model=copy.deepcopy(model))
    for max_length in (short, short + 1, 64):
        cfg = DpoTrainConfig(max_length=max_length, precompute_ref=False)
        trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=dpo_args(cfg, str(tmp_path)),
                             train_dataset=Dataset.from_list(PAIRS), processing_class=tok)
        assert pairs_within(tok, PAIRS, max_length)[0] == len(trainer.train_dataset)


def test_a_dpo_round_keeps_stdout_clean_and_stderr_free_of_dataset_bars_and_checkpointing_warnings(tiny, capsys):
    """Each PCO round printed trainer log dicts on stdout and, on stderr, trl's ``datasets`` progress bars ("Adding
    EOS to train dataset", "Flattening the indices") and transformers' FutureWarnings about the
    ``gradient_checkpointing`` names. Other warnings are not filtered."""
    import warnings

    model, tok = tiny
    policy, ref = copy.deepcopy(model), copy.deepcopy(model)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        train_dpo(DpoTrainConfig(epochs=1, batch_size=4, logging_steps=2), policy, tok, PAIRS, ref_model=ref)
        warnings.warn("a real warning", UserWarning, stacklevel=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert "Adding EOS" not in err and "Flattening the indices" not in err and "Tokenizing" not in err
    messages = [str(w.message) for w in shown]
    assert not [m for m in messages if "gradient_checkpointing" in m], messages
    assert "a real warning" in messages
    from datasets import are_progress_bars_disabled

    assert not are_progress_bars_disabled()  # restored after the round
