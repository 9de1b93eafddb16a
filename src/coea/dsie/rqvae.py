"""Residual-quantized VAE: L2-normalised user embeddings -> hierarchical Collaborative Semantic IDs (CSIDs).

An MLP encoder maps x (input_dim) to z (latent_dim); L codebooks quantize z residually, an MLP decoder
reconstructs x from the summed codes; the code index per level is the user's CSID, e.g. ``(3, 7, 1)``. Loss:
    mse(x, x_hat) + sum_l mse(sg[r_l], e_l) + beta * sum_l mse(r_l, sg[e_l])      (r_l: residual entering level l)
k-means codebook init (``RQVAE.init_codebooks``) and dead-code re-seeding (``RQVAE.reset_dead_codes``) are
explicit steps of ``train_rqvae``, never lazy branches in ``forward``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from coea.config import read_saved_config, save_config
from coea.console import no_step_bar, progress
from coea.device import model_device
from coea.dsie.config import RqVaeConfig
from coea.utils import atomic_path, seed_everything

log = logging.getLogger(__name__)

MODEL_FILE = "rqvae.pt"
CONFIG_FILE = "rqvae_config.json"
_JITTER = 1e-3  # relative noise added to duplicated points when there are fewer distinct points than codes


def _require(ok: bool, name: str, value: object, bound: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {bound}, got {value!r}")


@dataclass
class QuantizeOutput:
    """What ``ResidualQuantizer.forward`` returns."""

    quantized: Tensor  # (B, D) sum of codes, straight-through: gradients reach z unchanged
    ids: Tensor  # (B, L) long, code index per level
    codebook_loss: Tensor  # () sum over levels of mean ||sg[r_l] - e_l||^2 (moves codes)
    commitment_loss: Tensor  # () sum over levels of mean ||r_l - sg[e_l]||^2 (moves the encoder), unweighted
    residual_norms: Tensor  # (L + 1,) mean ||r_l|| entering each level; the last entry is what is left after all


@dataclass
class ResidualTrace:
    """What ``ResidualQuantizer.trace`` returns (no losses, no gradients)."""

    residuals: list[Tensor]  # L tensors (B, D): the residual entering each level (residuals[0] is z)
    ids: Tensor  # (B, L) long


@dataclass
class RqVaeOutput:
    """What ``RQVAE.forward`` returns."""

    recon: Tensor  # (B, input_dim)
    ids: Tensor  # (B, L) long
    quantized: Tensor  # (B, latent_dim)
    loss: Tensor  # () recon_loss + codebook_loss + beta * commitment_loss
    recon_loss: Tensor  # () mean squared error
    codebook_loss: Tensor  # ()
    commitment_loss: Tensor  # () unweighted
    residual_norms: Tensor  # (L + 1,) as in QuantizeOutput


@dataclass
class RqVaeResult:
    """What ``train_rqvae`` returns."""

    model: RQVAE  # trained, in eval mode
    ids: np.ndarray  # (N, L) int64 CSID of every user, in input order
    history: list[dict]  # one dict per epoch: epoch, loss, recon, codebook, commitment, usage, ms_per_step
    utilisation: list[float]  # per level: fraction of codes used by at least one user
    perplexity: list[float]  # per level: exp(entropy of code usage), in [1, K]
    collision_rate: float  # fraction of users whose full CSID is shared with another user
    paths: dict[str, Path] = field(default_factory=dict)  # "model", "config" when out_dir was given


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # no ReLU after the last layer

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, dims[0]) -> (B, dims[-1])


class Codebook(nn.Module):
    """K code vectors of dimension D; ``weight`` is the (K, D) parameter (plain, for distances between codes)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size, dim))  # (K, D)
        nn.init.uniform_(self.weight, -1.0 / size, 1.0 / size)  # placeholder until init_codebooks runs k-means

    def nearest(self, r: Tensor) -> Tensor:
        """Index of the closest code (squared Euclidean distance) for each row of r (B, D) -> (B,) long."""
        return _sq_dists(r, self.weight).argmin(dim=1)  # (B,)

    def lookup(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight)  # (B,) -> (B, D)


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances between rows: a (N, D), b (K, D) -> (N, K)."""
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)).clamp_min(0)  # (N, K)


class ResidualQuantizer(nn.Module):
    """L codebooks applied residually; ``codebooks[l].weight`` is level l's (K_l, D) code matrix."""

    def __init__(self, codebook_sizes: list[int], dim: int) -> None:
        super().__init__()
        self.codebooks = nn.ModuleList(Codebook(k, dim) for k in codebook_sizes)

    def forward(self, z: Tensor) -> QuantizeOutput:
        residual = z  # (B, D)
        total = torch.zeros_like(z)  # (B, D)
        ids, norms = [], []
        codebook_loss = commitment_loss = z.new_zeros(())
        for codebook in self.codebooks:
            norms.append(residual.norm(dim=1).mean())
            idx = codebook.nearest(residual.detach())  # (B,)
            code = codebook.lookup(idx)  # (B, D)
            codebook_loss = codebook_loss + F.mse_loss(code, residual.detach())
            commitment_loss = commitment_loss + F.mse_loss(residual, code.detach())
            total = total + code
            residual = residual - code.detach()
            ids.append(idx)
        norms.append(residual.norm(dim=1).mean())
        quantized = z + (total - z).detach()  # (B, D) straight-through estimator
        return QuantizeOutput(quantized, torch.stack(ids, dim=1), codebook_loss, commitment_loss,
                              torch.stack(norms).detach())

    @torch.no_grad()
    def trace(self, z: Tensor) -> ResidualTrace:
        """Residuals entering each level and the ids of z (B, D), without losses."""
        residual, residuals, ids = z, [], []
        for codebook in self.codebooks:
            residuals.append(residual)
            idx = codebook.nearest(residual)  # (B,)
            residual = residual - codebook.lookup(idx)
            ids.append(idx)
        return ResidualTrace(residuals, torch.stack(ids, dim=1))


def _sample_rows(points: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """n distinct rows of points (M, D) -> (n, D); when M < n, all rows plus jittered duplicates."""
    m = points.shape[0]
    if m >= n:
        return points[torch.randperm(m, generator=generator)[:n]]
    extra = points[torch.randint(m, (n - m,), generator=generator)]  # (n - m, D)
    scale = _JITTER * max(float(points.std()) if m > 1 else 0.0, float(points.abs().max()), 1e-3)
    return torch.cat([points, extra + scale * torch.randn(extra.shape, generator=generator)])


def kmeans(x: Tensor, k: int, iters: int, generator: torch.Generator) -> Tensor:
    """Seeded k-means (k-means++ start, Lloyd steps) on CPU rows x (N, D) -> centroids (k, D).

    With <= k distinct points they all become centroids plus jittered copies; empty clusters take far points.
    """
    x = x.detach().float()
    distinct = torch.unique(x, dim=0)  # (M, D)
    if distinct.shape[0] <= k:
        return _sample_rows(distinct, k, generator)
    centroids = _kmeanspp(x, k, generator)  # (k, D)
    for _ in range(iters):
        dists = _sq_dists(x, centroids)  # (N, k)
        assign = dists.argmin(dim=1)  # (N,)
        counts = torch.bincount(assign, minlength=k)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, D)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
        empty = (counts == 0).nonzero().flatten()
        if empty.numel() > 0:
            far = dists.gather(1, assign[:, None]).squeeze(1).topk(empty.numel()).indices
            new[empty] = x[far]
        centroids = new
    return centroids


def _kmeanspp(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next centroid drawn with probability proportional to squared distance."""
    chosen = [int(torch.randint(x.shape[0], (1,), generator=generator))]
    d2 = (x - x[chosen[0]]).pow(2).sum(1)  # (N,)
    for _ in range(1, k):
        idx = int(torch.multinomial(d2 / d2.sum(), 1, generator=generator))
        chosen.append(idx)
        d2 = torch.minimum(d2, (x - x[idx]).pow(2).sum(1))
    return x[chosen].clone()  # (k, D)


class RQVAE(nn.Module):
    """Encoder -> residual quantizer -> decoder. Call ``init_codebooks`` before training."""

    def __init__(self, cfg: RqVaeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = MLP([cfg.input_dim, *cfg.hidden_dims, cfg.latent_dim])
        self.quantizer = ResidualQuantizer(cfg.codebook_sizes, cfg.latent_dim)
        self.decoder = MLP([cfg.latent_dim, *reversed(cfg.hidden_dims), cfg.input_dim])

    def forward(self, x: Tensor) -> RqVaeOutput:
        z = self.encoder(x)  # (B, latent_dim)
        q = self.quantizer(z)
        recon = self.decoder(q.quantized)  # (B, input_dim)
        recon_loss = F.mse_loss(recon, x)
        loss = recon_loss + q.codebook_loss + self.cfg.beta * q.commitment_loss
        return RqVaeOutput(recon, q.ids, q.quantized, loss, recon_loss, q.codebook_loss, q.commitment_loss,
                           q.residual_norms)

    @torch.no_grad()
    def encode_ids(self, x: Tensor) -> Tensor:
        """CSIDs of x (B, input_dim) -> (B, L) long, on the model's device (x is moved there)."""
        return self.quantizer.trace(self.encoder(x.to(model_device(self)))).ids

    @torch.no_grad()
    def init_codebooks(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """k-means on the encoder outputs of x (N, input_dim) for level 1, on the residuals after level l for l+1."""
        generator = generator if generator is not None else torch.Generator().manual_seed(self.cfg.seed)
        residual = self.encoder(x)  # (N, latent_dim)
        for codebook in self.quantizer.codebooks:
            centroids = kmeans(residual.cpu(), codebook.weight.shape[0], self.cfg.kmeans_iters, generator)  # (K, D)
            codebook.weight.copy_(centroids.to(codebook.weight.device))
            residual = residual - codebook.lookup(codebook.nearest(residual))

    @torch.no_grad()
    def reset_dead_codes(self, residuals: list[Tensor], usage_counts: list[Tensor],
                         generator: torch.Generator | None = None) -> list[int]:
        """Re-seed codes used fewer than cfg.dead_code_threshold times; returns the number reset per level.

        residuals[l] (N, D) enters level l, usage_counts[l] (K_l,) counts its codes. Dead codes become the level-l
        residuals of points drawn (seeded) from the 2 * n_dead points with the largest error ||r_l - e_l||.
        """
        generator = generator if generator is not None else torch.Generator().manual_seed(self.cfg.seed)
        n_reset = []
        for codebook, residual, counts in zip(self.quantizer.codebooks, residuals, usage_counts, strict=True):
            dead = (counts < self.cfg.dead_code_threshold).nonzero().flatten()  # (n_dead,)
            if dead.numel() > 0:
                r = residual.detach()  # (N, D)
                error = (r - codebook.lookup(codebook.nearest(r))).norm(dim=1).cpu()  # (N,)
                pool = error.topk(min(r.shape[0], 2 * dead.numel())).indices  # worst-quantized points
                codebook.weight[dead] = _sample_rows(r.cpu()[pool], dead.numel(), generator).to(r.device)
            n_reset.append(int(dead.numel()))
        return n_reset


def utilisation(level_ids: np.ndarray, size: int) -> float:
    """Fraction of a level's ``size`` codes used by at least one user: |unique(ids)| / K."""
    return len(np.unique(level_ids)) / size


def perplexity(level_ids: np.ndarray, size: int) -> float:
    """exp(H), H = -sum_k p_k ln p_k with p_k = count_k / N: 1 when one code is used, K when usage is uniform."""
    p = np.bincount(level_ids, minlength=size) / len(level_ids)
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


def collision_rate(ids: np.ndarray) -> float:
    """Fraction of users (rows of ids (N, L)) whose whole CSID also belongs to another user."""
    _, inverse, counts = np.unique(ids, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.reshape(-1)] > 1).mean())


def _check_embeddings(cfg: RqVaeConfig, embeddings: np.ndarray, device: str) -> Tensor:
    arr = np.asarray(embeddings)
    if arr.ndim != 2 or arr.shape[1] != cfg.input_dim or arr.shape[0] == 0:
        raise ValueError(f"embeddings must have shape (N > 0, input_dim={cfg.input_dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("embeddings contain NaN or inf values; fix the encoder output before the RQ-VAE")
    return torch.as_tensor(arr, dtype=torch.float32, device=device)  # (N, input_dim)


def _run_epoch(model: RQVAE, opt: torch.optim.Optimizer, x: Tensor, cfg: RqVaeConfig,
               generator: torch.Generator) -> dict:
    """One Adam pass over x (N, input_dim) in seeded random order; returns the epoch's mean losses and ms/step."""
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator).to(x.device)  # (N,)
    sums = dict.fromkeys(("loss", "recon", "codebook", "commitment"), 0.0)
    start = time.perf_counter()
    for begin in range(0, n, cfg.batch_size):
        batch = x[order[begin:begin + cfg.batch_size]]  # (B, input_dim)
        out = model(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        for key, value in zip(sums, (out.loss, out.recon_loss, out.codebook_loss, out.commitment_loss), strict=True):
            sums[key] += value.item() * batch.shape[0] / n
    sums["ms_per_step"] = 1000 * (time.perf_counter() - start) / math.ceil(n / cfg.batch_size)
    return sums


def train_rqvae(cfg: RqVaeConfig, embeddings: np.ndarray, out_dir: Path | None = None, *,
                device: str = "cpu") -> RqVaeResult:
    """Train an RQ-VAE on ``device`` (a resolved torch device string) on user embeddings (N, input_dim) and
    assign every user its CSID.

    Seeds first, k-means initialises the codebooks, trains with Adam; after each epoch counts code usage over all
    users and, every ``reset_dead_every`` epochs (not after the last), re-seeds dead codes. With out_dir, saves
    ``rqvae.pt`` + ``rqvae_config.json`` there.
    """
    seed_everything(cfg.seed)
    x = _check_embeddings(cfg, embeddings, device)  # (N, input_dim)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = RQVAE(cfg).to(device)
    model.init_codebooks(x, generator)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    bar = tqdm(range(1, cfg.epochs + 1), desc="rqvae", disable=no_step_bar())
    for epoch in bar:
        stats = {"epoch": epoch, **_run_epoch(model, opt, x, cfg, generator)}
        trace = model.quantizer.trace(model.encoder(x))
        counts = [torch.bincount(trace.ids[:, i], minlength=k) for i, k in enumerate(cfg.codebook_sizes)]  # (K_l,)
        stats["usage"] = [float((c > 0).float().mean()) for c in counts]
        if cfg.reset_dead_every and epoch % cfg.reset_dead_every == 0 and epoch < cfg.epochs:
            stats["codes_reset"] = model.reset_dead_codes(trace.residuals, counts, generator)
        history.append(stats)
        bar.set_postfix(loss=f"{stats['loss']:.4f}")
        if epoch % 10 == 0 or epoch == cfg.epochs:
            log.info("rqvae epoch %d/%d loss %.5f recon %.5f usage %s %.1f ms/step", epoch, cfg.epochs,
                     stats["loss"], stats["recon"], [round(u, 2) for u in stats["usage"]], stats["ms_per_step"],
                     extra=progress("rqvae"))
    model.eval()
    ids = model.encode_ids(x).cpu().numpy()  # (N, L)
    sizes = cfg.codebook_sizes
    result = RqVaeResult(model, ids, history, [utilisation(ids[:, i], k) for i, k in enumerate(sizes)],
                         [perplexity(ids[:, i], k) for i, k in enumerate(sizes)], collision_rate(ids))
    if out_dir is not None:
        result.paths = save_rqvae(model, Path(out_dir))
    log.info("rqvae done: utilisation %s perplexity %s collision rate %.3f", np.round(result.utilisation, 2),
             np.round(result.perplexity, 2), result.collision_rate)
    return result


def save_rqvae(model: RQVAE, out_dir: Path) -> dict[str, Path]:
    """Write the state dict and the config atomically; returns {"model": ..., "config": ...}."""
    paths = {"model": out_dir / MODEL_FILE, "config": out_dir / CONFIG_FILE}
    with atomic_path(paths["model"]) as tmp:
        torch.save(model.state_dict(), tmp)
    save_config(model.cfg, paths["config"])
    return paths


def load_rqvae(model_dir: Path, device: str = "cpu") -> RQVAE:
    """Rebuild a model saved by ``save_rqvae`` (config JSON + state dict) on ``device``, in eval mode."""
    model_dir = Path(model_dir)
    config_path, model_path = model_dir / CONFIG_FILE, model_dir / MODEL_FILE
    for path in (config_path, model_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; train_rqvae(..., out_dir={model_dir}) writes it")
    cfg = read_saved_config(RqVaeConfig, config_path)
    model = RQVAE(cfg).to(device)
    model.load_state_dict(torch.load(model_path, map_location=device, weights_only=True))
    return model.eval()
