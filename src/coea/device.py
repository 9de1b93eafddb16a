"""The one device switch: ``device: auto | cpu | cuda | cuda:N`` (config) and ``--device`` (CLI).

:func:`check_device_spec` validates the spelling without torch (configs stay cheap to read);
:func:`resolve_device` turns a spec into the device string every model and tensor of a stage uses: ``auto``
is ``cuda`` when CUDA is available and ``cpu`` otherwise; asking for CUDA where there is none is an error, never
a silent fallback. The resolved string is what library functions take as ``device=`` and what the Hugging Face
trainers get as ``use_cpu = device == "cpu"``.

:func:`pin_torch_threads` applies ``COEA_TORCH_THREADS=N`` (torch's intra-op threads); :func:`resolve_device`, which
every stage that trains or scores calls first, applies it too, so the switch holds in every process that runs a
stage: the CLI, an in-process flow (tests, benchmarks) and each kfp.local pipeline step (a fresh Python).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import re
from collections.abc import Iterator

from coea.errors import CoeaInputError

AUTO = "auto"
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_spec(spec: str) -> str:
    """``spec`` stripped and lower-cased if it is auto, cpu, cuda or cuda:N; else a ValueError naming it."""
    norm = spec.strip().lower() if isinstance(spec, str) else spec
    if not isinstance(norm, str) or not _SPEC.match(norm):
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {spec!r}")
    return norm


THREADS_ENV = "COEA_TORCH_THREADS"


def pin_torch_threads(value: str | None = None) -> int | None:
    """Pin torch's intra-op threads to ``value`` (default: the ``COEA_TORCH_THREADS`` environment variable; unset or
    empty: leave torch alone) and set ``OMP_NUM_THREADS`` to it, which child processes (kfp.local steps) inherit.
    Oversubscribed CPUs are many times slower. Returns the thread count pinned, or None. A value that is not a
    positive integer is a :class:`~coea.errors.CoeaInputError`."""
    value = os.environ.get(THREADS_ENV) if value is None else value
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise CoeaInputError(f"must be a positive integer, got {value!r}", option=THREADS_ENV,
                             fix="set it to a thread count such as 2, or unset it")
    import torch

    os.environ["OMP_NUM_THREADS"] = value
    if torch.get_num_threads() != int(value):
        torch.set_num_threads(int(value))
    return int(value)


def resolve_device(spec: str) -> str:
    """The torch device string for ``spec``: "cpu", "cuda" or "cuda:N" (auto -> cuda when available); pins torch's
    threads first (:func:`pin_torch_threads`).

    Raises ValueError for a bad spelling, for cuda when CUDA is not available, and for cuda:N past the last GPU.
    """
    import torch

    pin_torch_threads()
    norm = check_device_spec(spec)
    if norm == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if norm == "cpu":
        return norm
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available; use --device cpu or auto")
    index = torch.device(norm).index
    if index is not None and index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) are "
                         f"visible; use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return norm


def cpu_step_device(spec: str) -> str:
    """The device spec a pipeline step without an accelerator (``evaluate``, ``recommend``: CPU pods) runs the run's
    ``device`` parameter with: ``cuda``/``cuda:N`` ask for the GPU steps' GPU, so here they mean ``auto`` (a GPU if
    the pod has one, else the CPU) instead of failing after the training; ``auto`` and ``cpu`` are unchanged."""
    norm = check_device_spec(spec)
    return AUTO if norm.startswith("cuda") else norm


def model_device(model):
    """The torch device of ``model``'s parameters: where its inputs must go (never a config's guess)."""
    return next(model.parameters()).device


def check_trainer_device(device: str) -> None:
    """Reject a device the Hugging Face trainers cannot honour: in one process they train on the FIRST visible GPU
    (``cuda:0``, and over every visible GPU with DataParallel), so ``cuda:N`` with N > 0 is selected with
    ``CUDA_VISIBLE_DEVICES=N`` and ``device: cuda`` instead of being silently replaced by ``cuda:0``."""
    index = device.partition(":")[2]
    if device.startswith("cuda") and index not in ("", "0"):
        raise ValueError(f"device {device!r}: the Hugging Face trainers train on the first visible GPU; select GPU "
                         f"{index} with CUDA_VISIBLE_DEVICES={index} and --device cuda")


class Precision(enum.StrEnum):
    """Training precision of the Hugging Face trainers (weights stay fp32; bf16 = autocast mixed precision)."""

    AUTO = "auto"  # bf16 on a CUDA device that supports it, fp32 on the CPU
    FP32 = "fp32"
    BF16 = "bf16"


def trainer_flags(device: str, precision: Precision | str = Precision.AUTO, *, compile_model: bool = False,
                  checkpointing: bool = False) -> dict:
    """The device-dependent ``TrainingArguments`` of SFT and DPO on ``device`` (a resolved torch device string):
    CPU or GPU, bf16 autocast (``precision``), pinned host memory for the batches on CUDA, optional
    ``torch.compile``, activation checkpointing only when asked (trl's configs turn it on by default: a second
    forward pass per layer that small models do not need). One place, so the SFT and DPO trainers use a GPU the
    same way."""
    precision = Precision(precision)
    cuda = device.startswith("cuda")
    if precision is Precision.AUTO:
        import torch

        bf16 = cuda and torch.cuda.is_bf16_supported()
    else:
        bf16 = precision is Precision.BF16
    return {"use_cpu": not cuda, "bf16": bf16, "fp16": False, "dataloader_pin_memory": cuda,
            "torch_compile": compile_model, "dataloader_num_workers": 0, **_checkpointing_flag(checkpointing)}


def _checkpointing_flag(on: bool) -> dict:
    """transformers 5 names it ``activation_checkpointing`` (``gradient_checkpointing``, trl's default-True field, is
    its deprecated alias, used only when the new name is unset); an older transformers has only the old name."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


@contextlib.contextmanager
def labelled_positions_only(device: str) -> Iterator[None]:
    """While SFT or DPO trains on the CPU inside this block, trl's fused output layer scores only the positions that
    carry a label (the completion), as it does on a CUDA GPU, instead of every position of the batch.

    trl (1.x, ``trl.trainer.utils``) scores the compact set of labelled positions only where Triton runs, to keep
    tile shapes fixed elsewhere (a recompilation per batch on compiled backends); the eager CPU path has no such
    cost. The loss is the same sum over the same positions. It matters when the vocabulary is wide: with one
    scratch token per movie (``llm.data.items``) every position's logits cost 9x the training time on the CPU
    (``benchmarks/bench_train.py``). A trl without the hook leaves training as it is.
    """
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:  # pragma: no cover - trl is a dependency
        yield
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or not str(device).startswith("cpu"):
        yield
        return
    trl_utils._use_triton = lambda dev: dev.type == "cpu" or original(dev)
    try:
        yield
    finally:
        trl_utils._use_triton = original
