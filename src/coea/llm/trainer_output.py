"""What the SFT and DPO trainers write to the console, kept to their step progress bars and our log lines.

Left alone, a training puts transformers' log dicts (``{'loss': '4.658', 'grad_norm': ...}``, ``{'train_runtime':
...}``) on stdout, before a command's own output (``coea evaluate``'s metrics table), and on stderr each PCO round
repeats trl's ``datasets`` progress bars ("Adding EOS to train dataset", "Flattening the indices") and transformers'
FutureWarnings about the ``gradient_checkpointing`` names, which trl's defaults and its reference forward use (our
code passes none). :class:`coea.llm.sft.LogLines` logs each dict at DEBUG instead.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

from transformers import PrinterCallback, ProgressCallback, Trainer

from coea.console import no_step_bar  # the trainers' disable_tqdm (sft.py and dpo.py import it from here)

# transformers 5: "`gradient_checkpointing` is deprecated and will be removed in v6. Use `activation_checkpointing`
# instead." (trl's configs default it to True), and the same for ``is_gradient_checkpointing``,
# ``gradient_checkpointing_enable`` / ``_disable`` (trl's reference log-probs turn checkpointing off around them)
GRADIENT_CHECKPOINTING_DEPRECATED = r"`(is_)?gradient_checkpointing\w*` is deprecated"


class StepBar(ProgressCallback):
    """transformers' step progress bar (stderr), without the log dicts it writes to stdout under the bar."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D401 - trainer hook
        return None


def quiet_callbacks(trainer: Trainer) -> Trainer:
    """``trainer`` without the callbacks that print its log dicts to stdout: its ``ProgressCallback`` becomes a
    :class:`StepBar` (same bar), its ``PrinterCallback`` (used when tqdm is disabled) goes. Returns ``trainer``."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(StepBar())
    while trainer.pop_callback(PrinterCallback) is not None:
        pass
    return trainer


@contextlib.contextmanager
def quiet_training() -> Iterator[None]:
    """While a trainer is built and trains inside: ``datasets``' progress bars off (restored afterwards), the
    ``gradient_checkpointing`` FutureWarnings (:data:`GRADIENT_CHECKPOINTING_DEPRECATED`) ignored; every other
    warning is shown as before. Where no step bar is drawn (:func:`no_step_bar`: off a terminal, or under the
    console's status line) also trl's own bars, e.g. DPO's "Computing
    reference log probs", which follow ``TQDM_DISABLE`` only (set while inside, restored afterwards): each update
    was a line of a pipeline step's log."""
    from datasets import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled, tqdm_env = are_progress_bars_disabled(), os.environ.get("TQDM_DISABLE")
    disable_progress_bars()
    if no_step_bar():
        os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_DEPRECATED, category=FutureWarning)
            yield
    finally:
        if not was_disabled:
            enable_progress_bars()
        if tqdm_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_env

