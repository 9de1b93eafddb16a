"""Rules of the encoder's training loop that every other test would let regress (audit, session 57: mutants that
survived): held-out users apart from the training users, the best held-out epoch's weights kept, the output bias
from the training windows alone. Tiny hand-made logs, milliseconds each."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import coea.dsie.encoder as encoder_mod
from coea.data.split import Histories
from coea.dsie.config import EncoderConfig
from coea.dsie.encoder import SasRec, _init_bias, _split_users, train_encoder
from coea.dsie.sequences import Windows, training_windows

CFG = EncoderConfig(dim=8, n_layers=1, n_heads=2, max_len=6, epochs=1, batch_size=8, patience=10, seed=3,
                    item_input=False, target="next", val_fraction=0.3, dropout=0.0)


def _histories(n_users: int = 20, n_events: int = 6, n_categories: int = 5) -> Histories:
    """``n_users`` random histories of ``n_events`` events (no two alike): every user's whole history fits one
    window of ``CFG.max_len``, so a user's held-out window is also the one it would train on."""
    rng = np.random.default_rng(0)
    rows = [(f"u{u:02d}", f"i{e}", f"c{rng.integers(n_categories)}", 1_700_000_000 + 60 * e)
            for u in range(n_users) for e in range(n_events)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])
    return Histories(frame, {}, sorted(frame["category"].unique()))


@pytest.fixture(scope="module")
def fitted() -> dict:
    """One :func:`train_encoder` of ``CFG`` with an output bias (for the module); what :func:`_fit` was given: the
    training and held-out windows and the bias the model starts from."""
    seen, real = {}, encoder_mod._fit

    def spy(model, opt, train, val, cfg, history):
        seen.update(train=train, val=val, bias=model.bias.detach().clone())
        return real(model, opt, train, val, cfg, history)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoder_mod, "_fit", spy)
        train_encoder(replace(CFG, output_bias=True), _histories())
    return seen


def test_held_out_users_are_apart_from_the_training_users():
    users = {f"u{i}": [2, 3] for i in range(20)}
    train, val = _split_users(users, CFG)
    assert len(val) == 6 and not set(train) & set(val) and set(train) | set(val) == set(users)


def test_no_held_out_window_is_trained_on(fitted):
    """Each held-out user gives one window, its whole history; a held-out user that also trained would give that
    same window to the training set (every history fits one window)."""
    train, val = fitted["train"], fitted["val"]
    assert len(val.inputs) == 6 and len(train.inputs) == 14  # 30 % of 20 users held out, one window each
    trained = {tuple(row) for row in train.inputs.tolist()}
    assert not any(tuple(row) in trained for row in val.inputs.tolist())


def _bias_from(targets: np.ndarray, vocab_size: int) -> torch.Tensor:
    model = SasRec(vocab_size, replace(CFG, output_bias=True))
    _init_bias(model, Windows(targets, targets))
    return model.bias.detach()


def test_the_output_bias_starts_from_the_training_windows_targets_only(fitted):
    """The log-frequency prior of the targets the model trains on; with the held-out windows' targets counted too
    (held-out users leaking into the fit) it differs."""
    train, val, size = fitted["train"].targets, fitted["val"].targets, fitted["bias"].numel()
    assert torch.equal(fitted["bias"], _bias_from(train, size))
    assert not torch.allclose(_bias_from(np.concatenate([train, val]), size), _bias_from(train, size))


def _scripted_fit(monkeypatch, val_losses: list[float], epochs: int, patience: int) -> tuple[dict, list[dict]]:
    """:func:`_fit` on a tiny model whose held-out losses are ``val_losses`` in turn: the weights it ends with
    and those after each epoch."""
    cfg = replace(CFG, epochs=epochs, patience=patience, lr=0.05)
    snapshots, losses = [], iter(val_losses)

    def scripted(model, win, cfg):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return next(losses)

    monkeypatch.setattr(encoder_mod, "_eval_loss", scripted)
    torch.manual_seed(0)
    model = SasRec(8, cfg)
    model.reset_parameters()
    win = training_windows([[2, 3, 4, 5, 6, 7, 2, 3], [4, 4, 5, 6, 7, 2]], cfg.max_len, True, 2)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    encoder_mod._fit(model, opt, win, win, cfg, [])
    return model.state_dict(), snapshots


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("epochs", "patience", "n_epochs"), [(3, 10, 3), (6, 1, 3)],
                         ids=["epoch-cap", "early-stop"])
def test_fitting_ends_on_the_best_held_out_epochs_weights(monkeypatch, epochs, patience, n_epochs):
    """Held-out losses 2, 1, 1.5: epoch 2's weights are kept, whether the cap (3 epochs) or early stopping (one
    epoch without improvement) ends the training after epoch 3."""
    final, snapshots = _scripted_fit(monkeypatch, [2.0, 1.0, 1.5, 3.0, 3.0, 3.0], epochs, patience)
    assert len(snapshots) == n_epochs and not _same(snapshots[1], snapshots[2])  # the weights moved
    assert _same(final, snapshots[1])
