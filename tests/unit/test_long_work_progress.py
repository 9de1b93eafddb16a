"""Long loops a person waits on say where they are out of how many: the DSIE encoder's epochs (of the cap, with
early stopping's state), the RQ-VAE's epochs and the PCO rounds."""

import logging
import re
from dataclasses import replace

from coea.config import SplitConfig
from coea.data.split import chronological_split
from coea.data.synthetic import generate_synthetic
from coea.dsie.config import EncoderConfig
from coea.dsie.encoder import train_encoder

TINY = EncoderConfig(dim=16, n_layers=1, n_heads=2, max_len=12, epochs=4, batch_size=32, patience=10, seed=1)
LINE = re.compile(r"^encoder epoch (\d+)/(\d+): train [\d.]+, held-out loss ([\d.]+) \(best ([\d.]+) at epoch (\d+); "
                  r"stops after (\d+) epochs without improvement, (\d+) so far\) \([\d.]+ ms/step\)$")


def _lines(tiny_synth, caplog, cfg):
    h = chronological_split(generate_synthetic(tiny_synth).interactions, SplitConfig()).histories
    with caplog.at_level(logging.INFO, logger="coea.dsie.encoder"):
        res = train_encoder(cfg, h)
    return res, [r.getMessage() for r in caplog.records if r.getMessage().startswith("encoder epoch")]


def test_encoder_epoch_lines_name_the_cap_the_best_epoch_and_the_patience(tiny_synth, caplog):
    res, lines = _lines(tiny_synth, caplog, TINY)
    assert len(lines) == len(res.history) == 4
    # progress lines (coea.console): a command's console shows them as its status line, or one a minute
    assert {getattr(r, "progress", None) for r in caplog.records if r.getMessage() in lines} == {"encoder"}
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(int(m[1]), int(m[2]), int(m[6])) for m in parsed] == [(e, 4, 10) for e in (1, 2, 3, 4)]
    best, best_at = float("inf"), -1
    for i, (m, row) in enumerate(zip(parsed, res.history, strict=True)):  # the best so far, its epoch, epochs since
        if row["val_loss"] < best - 1e-4:  # the encoder's rule of an improvement
            best, best_at = row["val_loss"], i
        assert float(m[3]) == round(row["val_loss"], 4) and float(m[4]) == round(best, 4)
        assert int(m[5]) == best_at + 1 and int(m[7]) == i - best_at


def test_encoder_early_stop_says_at_which_epoch_of_the_cap(tiny_synth, caplog):
    cfg = replace(TINY, epochs=30, patience=1, lr=0.5)  # a huge step size: the held-out loss stops improving
    res, lines = _lines(tiny_synth, caplog, cfg)
    stop = [r.getMessage() for r in caplog.records if "early stop" in r.getMessage()]
    best = LINE.match(lines[-1])
    assert len(res.history) < 30 and stop == [
        f"encoder: early stop after epoch {len(res.history)} of at most 30 (best held-out loss {best[4]} at epoch "
        f"{best[5]})"]
    assert lines[-1].startswith(f"encoder epoch {len(res.history)}/30:") and int(best[7]) == 1


def test_each_pco_round_says_when_it_starts_which_of_how_many_it_is(monkeypatch, caplog):
    """A round takes minutes before its first line ("pco round r: N users ..."); its start now names r/N."""
    from types import SimpleNamespace

    from coea.pco import loop as pco_loop

    loop = pco_loop.PcoLoop.__new__(pco_loop.PcoLoop)  # the round loop alone: rounds stubbed, no models
    loop.windows = [SimpleNamespace(index=i) for i in range(3)]
    loop.ctx = loop.novelty = loop.relevance = loop.evaluate = loop.out_dir = None
    loop._start = lambda resume: (1, [{"round": 0}, {"round": 1}]) if resume else (0, [{"round": 0}])
    row = {"acceptance_before": 0.1, "acceptance_after": 0.2, "mean_score_before": 0.31, "mean_score_after": 0.42}
    monkeypatch.setattr(pco_loop, "run_round", lambda *args: SimpleNamespace(as_row=lambda: dict(row)))
    with caplog.at_level(logging.INFO, logger="coea.pco.loop"):
        loop.run()
        starts = [r.getMessage() for r in caplog.records if r.getMessage().endswith(("DPO", "round 1)"))]
        assert starts == ["pco round 1/3: sampling, scoring, DPO", "pco round 2/3: sampling, scoring, DPO",
                          "pco round 3/3: sampling, scoring, DPO"]
        done = [r.getMessage() for r in caplog.records if " done in " in r.getMessage()]
        assert len(done) == 3 and all("mean P(yes) of the N-LLM's top-K new categories 0.310 -> 0.420 (share above "
                                      "pco.accept_threshold 0.100 -> 0.200)" in m for m in done), done
        caplog.clear()
        loop.run(resume=True)
    assert [r.getMessage() for r in caplog.records if ": sampling" in r.getMessage()] == [
        "pco round 2/3: sampling, scoring, DPO (resumed after round 1)", "pco round 3/3: sampling, scoring, DPO"]
