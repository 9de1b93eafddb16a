"""``llm.model.embedding_init: encoder``: a scratch LLM's category and item rows start from the DSIE encoder's
embeddings, mapped so that every inner product is the encoder's up to one scale; other rows keep their random init."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from coea.llm.config import ModelConfig
from coea.llm.embedding_init import EncoderEmbeddings, init_from_encoder, load_encoder_embeddings
from coea.llm.models import build_model_and_tokenizer
from coea.llm.prompts import category_text, item_text
from coea.llm.tokenizer import word_token_ids
from coea.stages import run_sft_stage


def _gram(rows: np.ndarray) -> np.ndarray:
    return rows @ rows.T


def _ids(tokenizer, words):
    return [ids[0] for ids in word_token_ids(tokenizer, words)]


def _bundle(categories, items, hidden=64):
    cfg = ModelConfig(hidden_size=hidden, intermediate_size=32, num_heads=4, num_kv_heads=2, seed=3)
    return build_model_and_tokenizer(cfg, categories, [" ".join(map(item_text, items))], [2, 2])


@pytest.mark.parametrize("enc_dim", [16, 64, 96])  # narrower than, as wide as, and wider than the model (PCA)
def test_rows_keep_the_encoders_geometry_and_other_rows_their_init(enc_dim):
    rng = np.random.default_rng(0)
    cats, items = ["Drama", "Comedy|Romance", "Action"], ["10", "11", "12", "13"]
    emb = EncoderEmbeddings({c: rng.normal(size=enc_dim) for c in cats},
                            {i: rng.normal(size=enc_dim) for i in items + ["not-in-the-tokenizer"]})
    bundle = _bundle(cats, items)
    weight = bundle.model.get_input_embeddings().weight
    before = weight.detach().clone().numpy()
    n = init_from_encoder(bundle.model, bundle.tokenizer, emb, seed=7)
    assert n == {"categories": 3, "items": 4}
    after = weight.detach().numpy()
    set_ids = _ids(bundle.tokenizer, [category_text(c) for c in cats] + [item_text(i) for i in items])
    other = np.setdiff1d(np.arange(len(after)), set_ids)
    np.testing.assert_array_equal(after[other], before[other])  # template words, CSID codes, specials untouched
    enc = np.stack([emb.categories[c] for c in cats] + [emb.items[i] for i in items])
    got = after[set_ids].astype(np.float64)
    if enc_dim <= 64:  # an isometry up to one scale: the Gram matrices are proportional
        ratio = _gram(got) / _gram(enc)
        np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-4)
    else:  # the top principal axes: the best rank-64 approximation of the Gram matrix, up to the scale
        u, s, vt = np.linalg.svd(enc, full_matrices=False)
        best = (enc @ vt[:64].T)
        np.testing.assert_allclose(_gram(got) / _gram(got)[0, 0], _gram(best) / _gram(best)[0, 0], rtol=1e-3)
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))  # noqa: E731
    assert rms(got) == pytest.approx(rms(before[other]), rel=1e-3)  # the scale of the random rows


def test_a_pretrained_base_or_an_unknown_value_is_refused():
    with pytest.raises(ValueError, match="scratch models only"):
        ModelConfig(base_model="/some/qwen", embedding_init="encoder")
    with pytest.raises(ValueError, match="embedding_init must be one of"):
        ModelConfig(embedding_init="dsie")


def test_sft_stage_starts_both_llms_from_the_fitted_encoder(tmp_path: Path, fitted, monkeypatch):
    """The stage reads the DSIE dir's encoder and the models SFT receives already hold its geometry (what training
    then changes is SFT's business); with the default ``random`` they do not."""
    from coea.llm import run as llm_run
    from coea.llm.sft import SftResult

    emb = load_encoder_embeddings(fitted.dsie)
    cats = sorted(emb.categories)
    enc = np.stack([emb.categories[c] for c in cats]).astype(np.float64)
    seen = {}

    def capture(cfg, model, tokenizer, examples, *, name, device, **_kwargs):
        rows = model.get_input_embeddings().weight.detach().numpy()[_ids(tokenizer, list(map(category_text, cats)))]
        seen[name] = _gram(rows.astype(np.float64))
        return SftResult(steps=0)

    monkeypatch.setattr(llm_run, "train_sft", capture)
    monkeypatch.setattr(llm_run, "heldout_auc", lambda *a, **k: {})
    for init in ("encoder", "random"):
        model = replace(fitted.cfg.llm.model, embedding_init=init)
        cfg = replace(fitted.cfg, llm=replace(fitted.cfg.llm, model=model))
        run_sft_stage(cfg, fitted.data, fitted.dsie, tmp_path / init)
        for name in ("novelty", "relevance"):
            corr = np.corrcoef(seen[name].ravel(), _gram(enc).ravel())[0, 1]
            assert (corr > 0.999) if init == "encoder" else (corr < 0.9), (init, name, corr)
