"""RQ-VAE: quantizer maths, k-means init, dead-code reset, training, determinism and save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coea.dsie.rqvae import (
    RQVAE,
    ResidualQuantizer,
    RqVaeConfig,
    collision_rate,
    kmeans,
    load_rqvae,
    perplexity,
    train_rqvae,
    utilisation,
)

N_BLOBS, DIM = 8, 16


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and immune to other processes on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(n: int = 400, seed: int = 0) -> np.ndarray:
    """n points around 8 well-separated gaussian centres in 16-d, L2-normalised, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_BLOBS, DIM))
    x = centres[np.arange(n) % N_BLOBS] + 0.15 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _cfg(**overrides) -> RqVaeConfig:
    values = dict(input_dim=DIM, hidden_dims=[32], latent_dim=8, codebook_sizes=[8, 8, 4], epochs=20,
                  batch_size=128, reset_dead_every=5, seed=3)
    return RqVaeConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    return _blobs()


@pytest.fixture(scope="module")
def trained(blobs, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("rqvae")
    return train_rqvae(_cfg(), blobs, out_dir=out_dir), out_dir


def _initialised_model(x: torch.Tensor) -> RQVAE:
    torch.manual_seed(0)
    model = RQVAE(_cfg())
    model.init_codebooks(x)
    return model


def test_quantizer_shapes_ids_and_nearest_codes():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer([8, 4, 6], dim=5)
    z = torch.randn(32, 5)  # (B, D)
    out = quantizer(z)
    assert out.quantized.shape == (32, 5) and out.ids.shape == (32, 3) and out.ids.dtype == torch.long
    assert out.residual_norms.shape == (4,) and out.codebook_loss.shape == () and out.commitment_loss.shape == ()
    for level, size in enumerate([8, 4, 6]):
        assert int(out.ids[:, level].min()) >= 0 and int(out.ids[:, level].max()) < size
    # level 1 picks the nearest code by brute force, and the forward value is the sum of the chosen codes
    weights = [cb.weight.detach() for cb in quantizer.codebooks]
    assert torch.equal(out.ids[:, 0], torch.cdist(z, weights[0]).argmin(dim=1))
    summed = sum(w[out.ids[:, level]] for level, w in enumerate(weights))
    assert torch.allclose(out.quantized, summed, atol=1e-6)
    assert torch.isclose(out.residual_norms[0], z.norm(dim=1).mean())
    assert torch.isclose(out.residual_norms[-1], (z - summed).norm(dim=1).mean(), atol=1e-5)
    # every level picks the code nearest to ITS residual (what the levels before left), in forward and in trace,
    # the path that gives users their CSIDs (encode_ids)
    traced = quantizer.trace(z)
    assert torch.equal(traced.ids, out.ids)
    residual = z
    for level, w in enumerate(weights):
        assert torch.allclose(traced.residuals[level], residual, atol=1e-6)
        assert torch.equal(out.ids[:, level], torch.cdist(residual, w).argmin(dim=1)), level
        residual = residual - w[out.ids[:, level]]


def test_straight_through_sends_recon_gradient_to_encoder_only(blobs):
    model = _initialised_model(torch.from_numpy(blobs))
    out = model(torch.from_numpy(blobs[:64]))
    out.recon_loss.backward()
    assert float(model.encoder.net[0].weight.grad.abs().sum()) > 0
    assert all(cb.weight.grad is None for cb in model.quantizer.codebooks)  # codes move only via codebook loss
    expected = out.recon_loss + out.codebook_loss + 0.25 * out.commitment_loss
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_kmeans_init_shrinks_residuals_and_uses_codes(blobs):
    x = torch.from_numpy(blobs)
    model = _initialised_model(x)
    norms = model(x).residual_norms  # (L + 1,)
    assert torch.all(norms[1:] <= norms[:-1] + 1e-6), norms
    assert float(norms[1]) < 0.5 * float(norms[0])  # 8 codes on 8 blobs remove most of z
    ids = model.encode_ids(x).numpy()
    assert utilisation(ids[:, 0], 8) >= 0.75


def test_kmeans_with_fewer_distinct_points_than_codes():
    points = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    x = points.repeat(10, 1)  # (30, 2), 3 distinct rows
    centroids = kmeans(x, 8, iters=5, generator=torch.Generator().manual_seed(0))
    assert centroids.shape == (8, 2) and torch.isfinite(centroids).all()
    assert torch.unique(centroids, dim=0).shape[0] == 8  # duplicates are jittered apart
    for p in points:
        assert torch.isclose(torch.cdist(p[None], centroids).min(), torch.tensor(0.0))
    again = kmeans(x, 8, iters=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(centroids, again)


def test_dead_code_reset_revives_far_code(blobs):
    x = torch.from_numpy(blobs)
    model = _initialised_model(x)
    with torch.no_grad():
        model.quantizer.codebooks[0].weight[3] = 100.0  # far from every point
    trace = model.quantizer.trace(model.encoder(x))
    counts = [torch.bincount(trace.ids[:, i], minlength=k) for i, k in enumerate([8, 8, 4])]
    assert int(counts[0][3]) == 0
    n_reset = model.reset_dead_codes(trace.residuals, counts)
    assert n_reset[0] >= 1
    assert float(model.quantizer.codebooks[0].weight[3].detach().abs().max()) < 10.0
    assert int((model.encode_ids(x)[:, 0] == 3).sum()) > 0


def test_training_lowers_loss_and_reports_usage(trained, blobs):
    result, _ = trained
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"] and last["recon"] < first["recon"]
    assert [h["epoch"] for h in result.history] == list(range(1, 21))
    assert [h["epoch"] for h in result.history if "codes_reset" in h] == [5, 10, 15]  # not after the last
    assert result.ids.shape == (len(blobs), 3) and result.ids.dtype == np.int64
    for level, size in enumerate([8, 8, 4]):
        assert result.utilisation[level] == len(np.unique(result.ids[:, level])) / size
        assert 1.0 <= result.perplexity[level] <= size
    assert result.utilisation[0] >= 0.75
    assert result.collision_rate == collision_rate(result.ids)


def test_training_is_deterministic(trained, blobs):
    result, _ = trained
    again = train_rqvae(_cfg(), blobs)
    assert np.array_equal(again.ids, result.ids)
    assert [h["loss"] for h in again.history] == [h["loss"] for h in result.history]


def test_saved_model_reloads_with_identical_ids(trained, blobs):
    result, out_dir = trained
    assert result.paths == {"model": out_dir / "rqvae.pt", "config": out_dir / "rqvae_config.json"}
    assert sorted(p.name for p in out_dir.iterdir()) == ["rqvae.pt", "rqvae_config.json"]  # no temp files left
    assert json.loads(result.paths["config"].read_text())["codebook_sizes"] == [8, 8, 4]
    model = load_rqvae(out_dir)
    assert np.array_equal(model.encode_ids(torch.from_numpy(blobs)).numpy(), result.ids)
    assert torch.equal(model.quantizer.codebooks[1].weight, result.model.quantizer.codebooks[1].weight)
    with pytest.raises(FileNotFoundError, match="missing/rqvae_config.json not found"):
        load_rqvae(out_dir / "missing")


def test_usage_metrics_hand_values():
    assert utilisation(np.array([0, 0, 1, 3]), 4) == 0.75
    assert perplexity(np.array([0, 0, 1, 1]), 4) == pytest.approx(2.0)
    assert perplexity(np.array([2, 2, 2]), 4) == pytest.approx(1.0)
    assert perplexity(np.array([0, 1, 2, 3]), 4) == pytest.approx(4.0)
    assert collision_rate(np.array([[0, 1], [0, 1], [1, 0], [2, 2]])) == 0.5
    assert collision_rate(np.array([[0, 1], [1, 1]])) == 0.0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("codebook_sizes", [], "codebook_sizes must be a non-empty list of ints >= 2, got \\[\\]"),
    ("codebook_sizes", [8, 1], "codebook_sizes"),
    ("hidden_dims", [0], "hidden_dims"),
    ("beta", -0.1, "beta must be >= 0, got -0.1"),
    ("lr", 0.0, "lr must be > 0"),
    ("epochs", 0, "epochs must be > 0"),
    ("reset_dead_every", -1, "reset_dead_every"),
])
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        RqVaeConfig(**{field: value})


def test_train_rejects_bad_embeddings(blobs):
    with pytest.raises(ValueError, match="input_dim=16"):
        train_rqvae(_cfg(), blobs[:, :10])
    bad = blobs.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_rqvae(_cfg(), bad)
