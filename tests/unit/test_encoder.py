"""The SASRec-style encoder: causality, normalised embeddings, training lowers loss, save/load, filtering."""

import numpy as np
import pytest
import torch

from coea.config import SplitConfig
from coea.data.split import chronological_split
from coea.data.synthetic import generate_synthetic
from coea.dsie.config import EncoderConfig
from coea.dsie.encoder import SasRec, _warn_if_capped, encode, load_encoder, train_encoder
from coea.dsie.sequences import training_windows, user_sequences
from coea.dsie.vocab import PAD, UNK, CategoryVocab
from coea.utils import log_softmax_rows
from tests.helpers import events

TINY = EncoderConfig(dim=16, n_layers=1, n_heads=2, max_len=12, epochs=4, batch_size=32, patience=10, seed=1)


def test_causal_mask_hides_the_future():
    torch.manual_seed(0)
    model = SasRec(10, TINY)
    model.reset_parameters()
    model.eval()
    a = torch.tensor([[2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0]])
    b = a.clone()
    b[0, 4] = 9  # change position 4 only
    with torch.no_grad():
        ha, hb = model(a), model(b)
    assert torch.allclose(ha[0, :4], hb[0, :4], atol=1e-6)  # earlier positions unaffected
    assert not torch.allclose(ha[0, 4], hb[0, 4])


def test_vocab_support_and_collapse():
    vocab = CategoryVocab.from_counts({"a": 5, "b": 1, "c": 3}, min_support=2)
    assert vocab.categories == ("a", "c") and vocab.ids(["a", "b", "c"]) == [2, UNK, 3]
    df = events([("u", "1", "a", 1), ("u", "2", "a", 2), ("u", "3", "c", 3), ("u", "4", "a", 4)])
    assert user_sequences(df, vocab, collapse_repeats=True)["u"] == [2, 3, 2]
    assert user_sequences(df, vocab, collapse_repeats=False)["u"] == [2, 2, 3, 2]
    # exactly min_support occurrences are enough (audit, session 55: a strict threshold passed)
    assert CategoryVocab.from_counts({"a": 2, "b": 1}, min_support=2).categories == ("a",)


def test_training_windows_cut_from_the_end():
    w = training_windows([list(range(2, 12))], max_len=4, all_windows=True, min_events=2)
    # sequence 2..11 (10 tokens): windows of 5 tokens from the end: 7..11, 3..7, then 2..3
    assert w.inputs[0].tolist() == [7, 8, 9, 10] and w.targets[0].tolist() == [8, 9, 10, 11]
    assert w.inputs[-1].tolist() == [2, PAD, PAD, PAD] and w.targets[-1].tolist() == [3, PAD, PAD, PAD]
    assert len(training_windows([[2, 3]], 4, True, min_events=3).inputs) == 0


def _histories(tiny_synth):
    df = generate_synthetic(tiny_synth).interactions
    return chronological_split(df, SplitConfig()).histories


def test_training_lowers_loss_and_embeddings_are_unit(tiny_synth, tmp_path):
    h = _histories(tiny_synth)
    res = train_encoder(TINY, h, tmp_path)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    seqs = user_sequences(h.interactions, res.vocab, TINY.collapse_repeats)
    users = sorted(seqs)[:10]
    emb, logits = encode(res.model, [seqs[u] for u in users] + [[]], TINY)
    assert np.allclose(np.linalg.norm(emb[:-1], axis=1), 1.0, atol=1e-5)
    assert np.all(emb[-1] == 0)  # an empty history has no embedding
    assert np.isneginf(logits[:, PAD]).all() and np.isneginf(logits[:, UNK]).all()
    model, vocab, cfg = load_encoder(tmp_path)
    emb2, _ = encode(model, [seqs[u] for u in users], cfg)
    assert vocab == res.vocab and np.allclose(emb[:-1], emb2, atol=1e-6)


def test_same_seed_same_model(tiny_synth):
    h = _histories(tiny_synth)
    a, b = train_encoder(TINY, h), train_encoder(TINY, h)
    for (ka, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka


def _losses(*vals):
    return [{"epoch": i, "val_loss": v} for i, v in enumerate(vals)]


def test_capped_encoder_warns_only_while_its_held_out_loss_still_falls(caplog):
    cfg = EncoderConfig(epochs=5, patience=2)
    with caplog.at_level("WARNING", logger="coea.dsie.encoder"):
        _warn_if_capped(_losses(5.0, 4.0, 3.5, 3.2, 3.0), cfg)  # best at the cap, down .5 over the last 2 epochs
    assert len(caplog.records) == 1 and "raise dsie.encoder.epochs" in caplog.text and "(5)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="coea.dsie.encoder"):
        _warn_if_capped(_losses(5.0, 4.0, 3.0, 3.1, 3.05), cfg)  # best before the cap: converged enough
        _warn_if_capped(_losses(5.0, 4.0, 3.0, 3.0, 2.9999), cfg)  # a plateau, not a fall
        _warn_if_capped(_losses(5.0, 4.0, 3.5, 3.2, 3.0), EncoderConfig(epochs=5, val_fraction=0.0))  # no held-out
    assert not caplog.records


def test_training_that_ends_at_its_cap_says_so(tiny_synth, caplog):
    """TINY's 4 epochs end with the held-out loss still falling on the synthetic log: the run warns."""
    with caplog.at_level("WARNING", logger="coea.dsie.encoder"):
        res = train_encoder(TINY, _histories(tiny_synth))
    val = [row["val_loss"] for row in res.history]
    assert len(val) == TINY.epochs and val[-1] == min(val)  # the premise: capped while improving
    assert "epoch cap (4)" in caplog.text


def test_gap_targets_skip_to_the_first_event_a_gap_later_and_pad_where_none_is():
    from coea.dsie.sequences import gap_targets

    seq, times = [2, 3, 4, 5, 6], np.array([0, 10, 20, 100, 110])
    assert gap_targets(seq, times, 50) == [5, 5, 5, PAD, PAD]  # 0, 10, 20 -> the event at 100; none after 100+50
    assert gap_targets(seq, times, 0) == [3, 4, 5, 6, PAD]  # gap 0: the next event, even at equal times
    assert gap_targets([2, 3, 4], np.array([0, 0, 0]), 0) == [3, 4, PAD]
    assert gap_targets(seq, times, 95) == [5, 6, PAD, PAD, PAD]  # 0 -> 100, 10 -> 110; nothing at 20 + 95 or later
    # exactly gap seconds later counts ("at least gap later"; audit, session 55: a strict "later than" passed)
    assert gap_targets([2, 3, 4], np.array([0, 50, 100]), 50) == [3, 4, PAD]


def test_training_windows_take_given_targets_and_drop_windows_without_any():
    seq = list(range(2, 12))
    nxt = training_windows([seq], 4, True, 2)
    same = training_windows([seq], 4, True, 2, targets=[seq[1:] + [PAD]])
    assert np.array_equal(nxt.inputs, same.inputs) and np.array_equal(nxt.targets, same.targets)
    late = [PAD] * 6 + [20, 21, PAD, PAD]  # only positions 6 and 7 have a target: the last window (5-8) keeps them
    w = training_windows([seq], 4, True, 2, targets=[late])
    assert w.inputs.tolist() == [[7, 8, 9, 10]] and w.targets.tolist() == [[PAD, 20, 21, PAD]]
    assert len(training_windows([seq], 4, True, 2, targets=[[PAD] * 10]).inputs) == 0


def test_target_gap_is_validated_against_negative_values_and_collapsed_repeats():
    with pytest.raises(ValueError, match="target_gap must be >= 0"):
        EncoderConfig(target_gap=-1)
    with pytest.raises(ValueError, match="collapse_repeats"):
        EncoderConfig(target_gap=86_400, collapse_repeats=True)
    assert EncoderConfig(target_gap=0, collapse_repeats=True).target_gap == 0


def test_an_encoder_with_a_target_gap_trains_on_the_events_a_gap_later(tiny_synth, tmp_path):
    from dataclasses import replace

    h = _histories(tiny_synth)
    gap = int(np.median(np.diff(np.sort(h.interactions["timestamp"].unique())))) * 5
    res = train_encoder(replace(TINY, target_gap=gap), h, tmp_path)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert load_encoder(tmp_path)[2].target_gap == gap  # saved with the model, as the sasrec method reads it
    pair = train_encoder(replace(TINY, target_gap=gap, target="both", target_horizon=5, epochs=2), h)
    assert [r["target"] for r in pair.history] == ["next", "next", "novel", "novel"]  # both parts learn a gap later
    assert all(np.isfinite(r["train_loss"]) for r in pair.history)


def test_novel_windows_carry_each_positions_next_events_and_the_history_before_the_window():
    from coea.dsie.sequences import novel_windows

    w = novel_windows([[2, 3, 2, 4, 5, 3, 6]], 4, True, 2, horizon=3, vocab_size=8)
    assert w.inputs.tolist() == [[2, 4, 5, 3], [2, 3, 0, 0]]  # cut from the end, as next-event windows
    assert w.targets[0].tolist() == [[4, 5, 3], [5, 3, 6], [3, 6, PAD], [6, PAD, PAD]]
    assert np.flatnonzero(w.prior[0]).tolist() == [2, 3] and not w.prior[1].any()
    gap = novel_windows([[2, 3, 4, 5]], 4, True, 2, 2, 8, times=[np.array([0, 10, 100, 110])], gap=50)
    assert gap.targets[0].tolist() == [[4, 5], [4, 5], [PAD, PAD], [PAD, PAD]]  # from the first event 50 s on


def test_novel_loss_scores_only_unseen_targets_against_unseen_categories():
    from coea.dsie.encoder import _loss

    torch.manual_seed(0)
    model = SasRec(8, EncoderConfig(dim=8, n_heads=2, n_layers=1, max_len=4, dropout=0.0))
    x = torch.tensor([[2, 3, 0, 0]])
    fut = torch.tensor([[[3, 4, 2], [2, 5, 5], [0, 0, 0], [0, 0, 0]]])  # position 0: 3, 4 are new; 1: only 5
    prior = torch.zeros(1, 8, dtype=torch.bool)
    loss, n = _loss(model, x, fut, prior)
    logits = model.logits(model(x))[0]
    expect = []
    for t, (targets, seen) in enumerate([([3, 4], [0, 1, 2]), ([5], [0, 1, 2, 3])]):
        z = logits[t].clone()
        z[seen] = -torch.inf
        expect.append(-z.log_softmax(-1)[targets].mean())
    assert n == 2 and torch.allclose(loss, torch.stack(expect).mean())
    prior[0, 3:6] = True  # had before the window: nothing left to learn
    assert _loss(model, x, fut, prior)[1] == 0


def test_a_novel_target_encoder_trains_with_a_falling_finite_loss(tiny_synth):
    from dataclasses import replace

    cfg = replace(TINY, target="novel", target_horizon=5)
    res = train_encoder(cfg, _histories(tiny_synth))
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0] and all(np.isfinite(losses))
    with pytest.raises(ValueError, match="target must be"):
        EncoderConfig(target="next-set")


def test_an_output_bias_starts_at_the_targets_log_frequency_and_is_saved(tiny_synth, tmp_path):
    from dataclasses import replace

    from coea.dsie.encoder import _init_bias

    cfg = replace(TINY, output_bias=True, epochs=1)
    model = SasRec(6, cfg)
    _init_bias(model, training_windows([[2, 3, 3, 3, 4]], 4, True, 2))  # targets 3, 3, 3, 4
    bias = model.bias.detach().numpy()
    assert bias[3] > bias[4] > bias[2] == bias[5]  # 3 most frequent, 2 and 5 never targets
    res = train_encoder(cfg, _histories(tiny_synth), tmp_path)
    loaded, _, loaded_cfg = load_encoder(tmp_path)
    assert loaded_cfg.output_bias and torch.equal(loaded.bias, res.model.bias)
    assert SasRec(6, TINY).bias is None  # the default head has none


def test_target_both_trains_each_encoder_as_it_would_be_trained_alone_and_ranks_by_their_mean_log_softmax(
        tiny_synth, tmp_path):
    from dataclasses import replace

    h = _histories(tiny_synth)
    cfg = replace(TINY, target="both", target_horizon=5)
    nxt, novel = cfg.parts()
    assert (nxt.target, nxt.output_bias, novel.target, novel.output_bias) == ("next", False, "novel", True)
    pair = train_encoder(cfg, h, tmp_path)
    alone = [train_encoder(part, h) for part in cfg.parts()]
    for part, single in zip(pair.model.parts, alone, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(part.state_dict().values(), single.model.state_dict().values(),
                                                     strict=True))
    assert [r["target"] for r in pair.history] == ["next"] * len(alone[0].history) + ["novel"] * len(alone[1].history)
    seqs = list(user_sequences(h.interactions, pair.vocab, False).values())[:6] + [[]]
    emb, scores = encode(pair.model, seqs, cfg)
    emb_next, logits_next = encode(alone[0].model, seqs, nxt)
    _, logits_novel = encode(alone[1].model, seqs, novel)
    real = [i for i in range(pair.vocab.size) if i not in (PAD, UNK)]
    assert np.allclose(emb, emb_next)  # the user embedding (CSIDs) is the next-event encoder's
    expect = (log_softmax_rows(logits_next[:, real]) + log_softmax_rows(logits_novel[:, real])) / 2
    assert np.allclose(scores[:-1, real], expect[:-1], atol=1e-5) and np.isneginf(scores[:, [PAD, UNK]]).all()
    assert (scores[-1, real] == 0).all() and (emb[-1] == 0).all()  # an empty history: uniform, zero embedding
    loaded, _, loaded_cfg = load_encoder(tmp_path)
    assert loaded_cfg.both and np.allclose(encode(loaded, seqs, loaded_cfg)[1][:, real], scores[:, real])


def test_item_codes_keep_padding_zero_and_a_category_only_vocab_reads_categories(tmp_path):
    from coea.dsie.sequences import encoder_sequences

    vocab = CategoryVocab.from_counts({"a": 5, "c": 3}, 1, {"m1": 3, "m2": 1}, min_item_support=2)
    assert vocab.items == ("m1",) and vocab.size == 4
    # code = item index (m1 -> 1, unknown -> 0) * size + category token
    assert vocab.codes(["a", "c", "zz"], ["m1", "m2", "m1"]) == [1 * 4 + 2, 0 * 4 + 3, 1 * 4 + UNK]
    df = events([("u", "m1", "a", 1), ("u", "m2", "c", 2)])
    assert encoder_sequences(df, vocab, False)["u"] == [6, 3]
    plain = CategoryVocab.from_counts({"a": 5, "c": 3}, 1)
    assert encoder_sequences(df, plain, False)["u"] == user_sequences(df, plain, False)["u"] == [2, 3]
    vocab.save(tmp_path / "v.json")
    plain.save(tmp_path / "p.json")
    assert CategoryVocab.load(tmp_path / "v.json") == vocab and CategoryVocab.load(tmp_path / "p.json") == plain
    with pytest.raises(ValueError, match="item_input reads every event"):
        EncoderConfig(item_input=True, collapse_repeats=True)
    # the default reads items unless repeats are collapsed (their events, and so their items, are dropped)
    assert EncoderConfig().reads_items and not EncoderConfig(collapse_repeats=True).reads_items
    assert not EncoderConfig(item_input=False).reads_items


def test_an_item_input_encoder_reads_the_items_predicts_categories_and_round_trips(tiny_synth, tmp_path):
    from dataclasses import replace

    from coea.dsie.sequences import encoder_sequences

    h = _histories(tiny_synth)
    cfg = replace(TINY, item_input=True, min_item_support=2, target="both", target_horizon=5)
    res = train_encoder(cfg, h, tmp_path)
    assert res.vocab.items and all(part.items is not None for part in res.model.parts)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    seqs = encoder_sequences(h.interactions, res.vocab, False)
    users = sorted(seqs)[:8]
    codes = [seqs[u] for u in users]
    assert max(max(s) for s in codes) >= res.vocab.size  # items are read, not only categories
    emb, logits = encode(res.model, codes, cfg)
    assert logits.shape == (len(users), res.vocab.size)  # one score per category token
    # the same categories with every item unknown: another ranking, so the item embeddings count
    cats_only = [[c % res.vocab.size for c in s] for s in codes]
    assert not np.allclose(encode(res.model, cats_only, cfg)[1][:, 2:], logits[:, 2:])
    model, vocab, loaded_cfg = load_encoder(tmp_path)
    assert vocab == res.vocab and loaded_cfg.item_input
    assert np.allclose(encode(model, codes, loaded_cfg)[1][:, 2:], logits[:, 2:], atol=1e-5)
    assert SasRec(6, replace(TINY, item_input=False)).items is None  # categories only

def test_an_encoder_saved_without_item_embeddings_loads_as_one_that_reads_no_items(tiny_synth, tmp_path):
    """Encoders saved before item_input existed (no key in encoder_config.json, no item embedding) still load,
    though the default now reads items: the weights say what the encoder reads."""
    import json
    from dataclasses import replace

    h = _histories(tiny_synth)
    res = train_encoder(replace(TINY, item_input=False, epochs=1), h, tmp_path)
    saved = json.loads((tmp_path / "encoder_config.json").read_text())
    assert saved["item_input"] is False
    del saved["item_input"]
    (tmp_path / "encoder_config.json").write_text(json.dumps(saved))
    model, vocab, cfg = load_encoder(tmp_path)
    assert not cfg.reads_items and not vocab.items and model.items is None
    seqs = user_sequences(h.interactions, vocab, False)
    codes = [seqs[u] for u in sorted(seqs)[:4]]
    assert np.allclose(encode(model, codes, cfg)[1], encode(res.model, codes, res.config)[1], atol=1e-5)


def test_windows_read_the_given_inputs_and_keep_category_targets():
    from coea.dsie.sequences import novel_windows

    cats, codes = [2, 3, 2, 4], [10 + 2, 3, 20 + 2, 30 + 4]
    w = training_windows([cats], max_len=4, all_windows=True, min_events=2, inputs=[codes])
    assert w.inputs[0].tolist() == [12, 3, 22, PAD] and w.targets[0].tolist() == [3, 2, 4, PAD]
    n = novel_windows([cats], max_len=4, all_windows=True, min_events=2, horizon=2, vocab_size=5, inputs=[codes])
    assert n.inputs[0].tolist() == [12, 3, 22, PAD] and n.targets[0].tolist() == [[3, 2], [2, 4], [4, PAD],
                                                                                    [PAD, PAD]]


def test_settings_that_leave_nothing_to_learn_are_one_line_input_errors(tiny_synth):
    """min_user_events above every history, or min_category_support above every category's count, is refused before
    any training with a CoeaInputError (exit 2 in the CLI) naming the dsie.encoder key and a value that works: the
    second used to train silently on UNK alone (one group, collision rate 1.0)."""
    from dataclasses import replace

    from coea.errors import CoeaInputError

    h = _histories(tiny_synth)
    with pytest.raises(CoeaInputError, match=r"min_user_events is 100000, the longest training history has \d+"
                       ) as err:
        train_encoder(replace(TINY, min_user_events=100_000), h)
    assert "dsie.encoder.min_user_events" in str(err.value) and "fix: lower" in str(err.value)
    n = h.interactions["category"].nunique()
    with pytest.raises(CoeaInputError, match=rf"min_category_support 100000 leaves 0 of {n} categories known") as err:
        train_encoder(replace(TINY, min_category_support=100_000), h)
    assert "option dsie.encoder.min_category_support" in str(err.value) and "\n" not in str(err.value)
    top2 = sorted(h.interactions["category"].value_counts())[-2]
    with pytest.raises(CoeaInputError, match=rf"leaves 1 of {n} categories known.*at most {top2}"):
        train_encoder(replace(TINY, min_category_support=top2 + 1), h)


def test_the_ranking_window_is_a_users_most_recent_events():
    """``last_windows`` (what sasrec, nllm_seq and the teacher score from): the LAST ``max_len`` tokens of a history
    longer than the window, right-padded for a shorter one, with the index of the last real token; an empty
    history scores from position 0 of an all-pad window."""
    from coea.dsie.sequences import last_windows

    inputs, last = last_windows([list(range(1, 21)), [7, 8], []], max_len=5)
    assert inputs.tolist() == [[16, 17, 18, 19, 20], [7, 8, PAD, PAD, PAD], [PAD] * 5]
    assert last.tolist() == [4, 1, 0]
