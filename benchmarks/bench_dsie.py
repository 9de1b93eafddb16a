"""DSIE on MovieLens-1M (../shared): encoder seconds per epoch, RQ-VAE training, whole `run_dsie`.

Ratios are against baselines measured in the same run: the encoder epoch against fitting the `markov`
baseline (the cheapest sequence model), the novel-set target's epoch and the default view's encoder pair's (one
epoch of each of its encoders) against the next-event one's, the RQ-VAE
against scikit-learn k-means with the same number of groups on the same embeddings.
Run: ``make bench`` or ``python benchmarks/bench_dsie.py``; ``--small``: a small synthetic log (a check that
the script runs, not a measurement).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT_DIR, bench_options, measure, movielens_split, report, small_split  # noqa: E402

from coea.dsie.config import DsieConfig  # noqa: E402
from coea.dsie.encoder import encode, train_encoder  # noqa: E402
from coea.dsie.rqvae import train_rqvae  # noqa: E402
from coea.dsie.run import run_dsie  # noqa: E402
from coea.dsie.sequences import user_sequences  # noqa: E402
from coea.evaluation.baselines import Markov  # noqa: E402
from coea.stages.dsie import resolve_encoder  # noqa: E402


def main(small: bool = False, out_dir: Path = OUT_DIR) -> int:
    from sklearn.cluster import KMeans

    split = small_split() if small else movielens_split()
    if split is None:
        return 0
    h = split.histories
    cfg = DsieConfig()
    if small:  # a check that the script runs: every training a few epochs
        cfg = replace(cfg, encoder=replace(cfg.encoder, epochs=3), rqvae=replace(cfg.rqvae, epochs=10))
    rows = {"markov fit (baseline)": measure(lambda: Markov().fit(h))}
    one_epoch = replace(cfg.encoder, epochs=3, patience=99)

    def per_epoch(enc_cfg):
        """One training of ``enc_cfg``'s 3 epochs, its seconds divided by 3."""
        row = measure(lambda: train_encoder(enc_cfg, h), repeats=1)
        row.update({k: v / 3 for k, v in row.items() if k.endswith("seconds")})
        return row

    rows["encoder, per epoch"] = enc_row = per_epoch(one_epoch)
    novel = replace(one_epoch, target="novel", target_horizon=split.config.n_future, output_bias=True)
    rows["encoder, per epoch, novel-set target"] = novel_row = per_epoch(novel)
    rows["encoder pair (target both), per epoch of each"] = both_row = per_epoch(replace(novel, target="both"))
    enc = train_encoder(one_epoch, h)
    seqs = user_sequences(h.interactions, enc.vocab, one_epoch.collapse_repeats)
    emb, _ = encode(enc.model, [seqs[u] for u in split.warm_users], one_epoch)
    rqvae_row = f"rqvae train ({cfg.rqvae.epochs} epochs)"
    rows[rqvae_row] = measure(lambda: train_rqvae(cfg.rqvae, emb), repeats=1)
    start = time.perf_counter()
    # what `coea group` runs on this view: the encoder fields resolved from the split (the default view's pair)
    res = run_dsie(replace(cfg, encoder=resolve_encoder(cfg.encoder, split.config)), h, split.warm_users,
                   split.cold_users)
    total = time.perf_counter() - start
    n_groups = int(res.report["csid_groups"]["sizes"]["M_N"])  # the groups DSIE made (small ones merged)
    rows["kmeans same M_N (baseline)"] = measure(
        lambda: KMeans(n_clusters=n_groups, n_init=4, random_state=0).fit(emb), repeats=1)
    base_m, base_k = rows["markov fit (baseline)"]["seconds"], rows["kmeans same M_N (baseline)"]["seconds"]
    rows["encoder, per epoch"]["ratio"] = rows["encoder, per epoch"]["seconds"] / base_m
    # the novel-set target's and the pair's epochs against the next-event one's, measured just before them
    novel_row["ratio"] = novel_row["seconds"] / enc_row["seconds"]
    both_row["ratio"] = both_row["seconds"] / enc_row["seconds"]
    rows[rqvae_row]["ratio"] = rows[rqvae_row]["seconds"] / base_k
    print(f"run_dsie end to end: {total:.1f}s, {len(res.encoder.history)} encoder epochs, "
          f"M_N={res.report['csid_groups']['sizes']['M_N']}")
    report("dsie" + ("_small" if small else ""), rows,
           {"run_dsie_seconds": total, "encoder_epochs": len(res.encoder.history)}, out_dir=out_dir)
    return 0


if __name__ == "__main__":
    args = bench_options(__doc__)
    raise SystemExit(main(args.small, args.out))
