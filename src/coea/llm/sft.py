"""SFT of the Novelty and Relevance LLMs with trl's ``SFTTrainer`` (prompt-completion data: the loss is on
the completion only, and with ``sequence_loss`` on the prompt's last history categories too). Works for the scratch
model and for a LoRA-wrapped pretrained model alike.

With :class:`SftCheckpoints` a training saves a resumable checkpoint (weights, optimizer, scheduler, RNG states,
trainer state) every ``checkpoint_minutes`` and keeps the last one; started again with the same settings and
examples (the fingerprint file beside them) it resumes from it at the same step, with the same batches after it,
instead of starting over; a checkpoint written for other settings or examples is discarded with a warning. The
folder is deleted when the training ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from coea.console import progress
from coea.device import check_trainer_device, labelled_positions_only, trainer_flags
from coea.errors import CoeaInputError
from coea.llm.models import unpatch_forward
from coea.llm.sft_config import SftTrainConfig, without_run_only
from coea.llm.trainer_output import no_step_bar, quiet_callbacks, quiet_training
from coea.utils import freeze_gc_heap, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class SftResult:
    """Losses logged during training (trl's ``log_history`` entries with a loss) and wall time."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    n_examples: int = 0


class LogLines(TrainerCallback):
    """One log line per ``logging_steps`` in pod logs: step, loss, ms/step (a progress line: a command's console
    shows it as its status line, :mod:`coea.console`); the trainer's whole log dict (which
    transformers would print on stdout, see :mod:`coea.llm.trainer_output`) at DEBUG. The last step is always
    logged, so a training's last logged loss is its end's (a 36-step training at logging_steps 20 logged step 20
    only: its first and last loss were the same)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.last = (0, time.perf_counter())

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: D401 - trainer hook
        self.last = (state.global_step, time.perf_counter())  # a resumed training starts at its checkpoint's step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D401 - trainer hook
        if state.global_step >= state.max_steps:
            control.should_log = True  # the trainer skips it when this step was logged already

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D401 - trainer hook
        log.debug("%s step %d: %s", self.name, state.global_step, logs)
        if logs and "loss" in logs:
            step0, t0 = self.last
            ms = 1000 * (time.perf_counter() - t0) / max(state.global_step - step0, 1)
            log.info("%s step %d/%d loss %.4f (%.1f ms/step)", self.name, state.global_step, state.max_steps,
                     logs["loss"], ms, extra=progress(self.name))
            self.last = (state.global_step, time.perf_counter())


FINGERPRINT = "fingerprint.txt"  # in a checkpoint folder: what the checkpoints were trained on
CHECKPOINT_PREFIX = "checkpoint-"  # transformers' checkpoint-<step> subfolders
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint-<step> folder: the checkpoint is complete


@dataclass(frozen=True)
class SftCheckpoints:
    """Where one training keeps its resumable checkpoint (module doc). ``key``: the caller's description of the
    model it starts from and of its settings (with the training config and the examples, the fingerprint);
    ``on_save``: called with each new complete ``checkpoint-<step>`` folder (e.g. to copy it off the machine)."""

    dir: Path
    key: str
    on_save: Callable[[Path], None] | None = None


class SaveEvery(TrainerCallback):
    """Asks the trainer for a checkpoint once ``minutes`` have passed since the last one (or the start), and hands
    each saved one to ``on_save``."""

    def __init__(self, minutes: float, on_save: Callable[[Path], None] | None) -> None:
        self.seconds, self.hook, self.last = 60.0 * minutes, on_save, time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D401 - trainer hook
        if time.monotonic() - self.last >= self.seconds and state.global_step < state.max_steps:
            control.should_save = True
            self.last = time.monotonic()  # the trainer saves right after this hook

    def on_save(self, args, state, control, **kwargs):  # noqa: D401 - trainer hook
        took, self.last = time.monotonic() - self.last, time.monotonic()
        path = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        log.info("sft checkpoint at step %d/%d (%.2f s): %s", state.global_step, state.max_steps, took, path)
        if self.hook is not None:
            self.hook(path)


def fingerprint(key: str, cfg: SftTrainConfig, examples: Sequence[dict[str, str]]) -> str:
    """sha256 of ``key``, the training settings (all but ``RUN_ONLY_FIELDS``) and the examples, in order."""
    h = hashlib.sha256(key.encode())
    settings = without_run_only(asdict(cfg))
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for e in examples:
        h.update(b"\0".join((e["prompt"].encode(), e["completion"].encode(), b"")))
    return h.hexdigest()


def complete_checkpoint(folder: Path) -> Path | None:
    """The ``checkpoint-<step>`` subfolder of ``folder`` with the highest step whose trainer state was written
    (a save a kill cut short has none), or None."""
    done = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*")
            if p.name.removeprefix(CHECKPOINT_PREFIX).isdigit() and (p / TRAINER_STATE).is_file()]
    return max(done, key=lambda p: int(p.name.removeprefix(CHECKPOINT_PREFIX)), default=None)


def resume_point(ck: SftCheckpoints, expected: str, name: str) -> Path | None:
    """The checkpoint to resume ``name``'s training from: the last complete one in ``ck.dir`` when the folder's
    fingerprint is ``expected``; otherwise the folder is emptied (a warning when it held a checkpoint of other
    settings or examples) and gets ``expected``. None = start from the first step."""
    folder = Path(ck.dir)
    written = folder / FINGERPRINT
    found = complete_checkpoint(folder) if folder.is_dir() else None
    if found is not None and written.is_file() and written.read_text(encoding="utf-8").strip() == expected:
        return found
    if found is not None:
        log.warning("%s sft: the checkpoint %s was written for other settings or examples; it is discarded and the "
                    "training starts from the first step", name, found)
    shutil.rmtree(folder, ignore_errors=True)
    write_text_atomic(written, expected + "\n")
    return None


def _subsample(examples: Sequence[dict[str, str]], cfg: SftTrainConfig) -> list[dict[str, str]]:
    if cfg.max_examples is None or len(examples) <= cfg.max_examples:
        return list(examples)
    keep = np.sort(np.random.default_rng(cfg.seed).choice(len(examples), size=cfg.max_examples, replace=False))
    return [examples[i] for i in keep]


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, return_attention_mask=False, return_token_type_ids=False)["input_ids"]


def sequence_label_ranges(tokenizer: PreTrainedTokenizerBase, prompt_ids: dict[str, list[int]],
                          last: int) -> dict[str, tuple[int, int] | None]:
    """Per prompt (-> its token ids), the token positions ``[a, b)`` that spell the last ``last`` category words of
    its ``seq:`` section (:func:`coea.llm.prompts.sequence_tail_span`), or None: no section, or a tokenizer whose
    ids of the prompt's prefixes are not prefixes of the prompt's ids (a sub-word merge across the cut). The
    prefixes of all prompts are tokenized in one call."""
    from coea.llm.prompts import sequence_tail_span

    found = [(p, span) for p in prompt_ids if (span := sequence_tail_span(p, last)) is not None]
    out: dict[str, tuple[int, int] | None] = dict.fromkeys(prompt_ids)
    if not found:  # a tokenizer called on no text fails (IndexError), so a chunk without sections stops here
        return out
    prefixes = _encode(tokenizer, [text for p, (a, b) in found for text in (p[:a].rstrip(), p[:b])])
    for j, (p, _) in enumerate(found):
        a_ids, b_ids = prefixes[2 * j], prefixes[2 * j + 1]
        a, b = len(a_ids), len(b_ids)
        if a < b and prompt_ids[p][:b] == b_ids and b_ids[:a] == a_ids:
            out[p] = (a, b)
    return out


def tokenize_examples(tokenizer: PreTrainedTokenizerBase, examples: Sequence[dict[str, str]], max_length: int,
                      *, chunk: int = 8192, sequence_loss: int = 0, dropped: list[int] | None = None):
    """``examples`` (prompt/completion) as the ``datasets.Dataset`` of ``input_ids`` and ``labels`` that trl's
    ``SFTTrainer`` would prepare from them (trl 1.x, ``completion_only_loss``, keep-start truncation): the EOS token
    appended to a completion that does not end with it, the completion starting where the token ids of the prompt
    and of prompt + completion diverge, -100 labels on the prompt; unlike trl, a row longer than ``max_length`` is
    dropped rather than cut (a completion cut inside a multi-token name would teach its prefix name). trl tokenizes
    one example at a time (~1,000 a second on one core: 9 minutes for the 450k MovieLens N-LLM examples with the
    sequence section); this calls the fast tokenizer on ``chunk`` texts at a time, each distinct prompt once.
    tests/unit/test_sft.py checks the rows against trl's own preparation.

    ``sequence_loss`` N > 0 (``SftTrainConfig.sequence_loss``) also labels the prompt tokens of the last N category
    words of its ``seq:`` section (:func:`sequence_label_ranges`), each trained as the next token of the prompt
    before it: the ordered history's next-category objective (what the DSIE encoder / ``sasrec`` learns at every
    position), beside the completion. ``dropped``, a list, gets the token length of every row left out."""
    from datasets import Dataset, concatenate_datasets
    from trl.data_utils import common_prefix_length

    eos = tokenizer.eos_token
    parts, labelled = [], 0
    for start in range(0, len(examples), chunk):
        batch = examples[start:start + chunk]
        completions = [e["completion"] if eos is None or e["completion"].endswith(eos) else e["completion"] + eos
                       for e in batch]
        unique = list(dict.fromkeys(e["prompt"] for e in batch))  # split targets: one prompt, several examples
        prompt_ids = dict(zip(unique, _encode(tokenizer, unique), strict=True))
        seq_labels = sequence_label_ranges(tokenizer, prompt_ids, sequence_loss) if sequence_loss else {}
        labelled += sum(span is not None for span in seq_labels.values())
        full_ids = _encode(tokenizer, [e["prompt"] + c for e, c in zip(batch, completions, strict=True)])
        rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        for e, ids in zip(batch, full_ids, strict=True):
            p = prompt_ids[e["prompt"]]
            n = len(p) if ids[:len(p)] == p else common_prefix_length(p, ids)  # the completion's start
            if n < len(ids) <= max_length:  # the whole completion fits (token ids are never -100): a completion
                # cut inside a name would teach another name (Comedy of Comedy|Romance), so such a row is left out
                labels = [-100] * n + ids[n:]
                if (span := seq_labels.get(e["prompt"])) is not None and span[1] <= n:
                    labels[span[0]:span[1]] = ids[span[0]:span[1]]
                rows["input_ids"].append(ids)
                rows["labels"].append(labels)
            elif dropped is not None and n < len(ids):
                dropped.append(len(ids))
        parts.append(Dataset.from_dict(rows))
    if sequence_loss and not labelled:
        log.warning("sequence_loss %d: no prompt has a seq: section whose tokens could be labelled (llm.data.sequence "
                    "0, or a tokenizer that merges tokens across the section's words); the loss is on the completions "
                    "only", sequence_loss)
    return concatenate_datasets(parts) if parts else Dataset.from_dict({"input_ids": [], "labels": []})


def _tokenized(cfg: SftTrainConfig, tokenizer: PreTrainedTokenizerBase, kept: Sequence[dict[str, str]],
               name: str):
    """``kept`` tokenized (a ``datasets.Dataset``, :func:`tokenize_examples`); a warning for the examples that
    ``max_length`` leaves out (those not fitting with their whole completion), an error when that is most of them:
    what is left is the examples with the shortest histories, not a sample (a pretrained base's sub-word tokenizer
    under the default prompt keeps 6 % of the N-LLM's MovieLens examples at 192 tokens: README *LLM inputs*)."""
    start, dropped = time.perf_counter(), []
    data = tokenize_examples(tokenizer, kept, cfg.max_length, sequence_loss=cfg.sequence_loss, dropped=dropped)
    log.info("%s sft: tokenized %d examples in %.1fs", name, len(kept), time.perf_counter() - start)
    fix = ("raise this training's max_length (llm.novelty, llm.relevance or pco.relevance_refresh)"
           + (f" to {max(dropped)} to keep every example" if dropped else "") + ", or shorten the prompt "
           "(llm.data.sequence, items, long_term): a sub-word tokenizer spends several tokens on each name")
    if not len(data):
        raise CoeaInputError(f"{name}: no SFT example fits max_length {cfg.max_length} with its whole completion",
                             fix=fix)
    if 2 * len(data) < len(kept):
        raise CoeaInputError(f"{name}: only {len(data)} of {len(kept)} SFT examples fit max_length {cfg.max_length} "
                             "with their whole completion (training on them would learn from the shortest "
                             "histories alone)", fix=fix)
    if len(data) < len(kept):
        log.warning("%s sft: %d of %d examples do not fit max_length %d with their whole completion and are left "
                    "out; %s", name, len(kept) - len(data), len(kept), cfg.max_length, fix)
    return data


def train_sft(cfg: SftTrainConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
              examples: Sequence[dict[str, str]], *, name: str = "llm", device: str = "cpu",
              callbacks: Sequence[TrainerCallback] = (), checkpoints: SftCheckpoints | None = None) -> SftResult:
    """Fine-tune ``model`` in place on ``device`` (a resolved torch device string) on prompt/completion
    ``examples``; returns the logged losses. The model is moved to ``device`` first and stays there.
    ``callbacks``: extra trainer callbacks (e.g. a benchmark's step timer). ``checkpoints``: save and resume
    (module doc; ``cfg.checkpoint_minutes`` 0 = neither); None = neither."""
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError(f"{name}: no SFT examples; histories are too short for the cut settings")
    check_trainer_device(device)
    freeze_gc_heap()
    model.to(device)
    kept = _subsample(examples, cfg)
    data = _tokenized(cfg, tokenizer, kept, name)
    if checkpoints is not None and not cfg.checkpoint_minutes:
        checkpoints = None
    resume = None if checkpoints is None else resume_point(checkpoints, fingerprint(checkpoints.key, cfg, kept), name)
    scratch = tempfile.TemporaryDirectory(prefix=f"coea-sft-{name}-") if checkpoints is None else nullcontext()
    with scratch as tmp, quiet_training():
        args = SFTConfig(
            output_dir=tmp or str(checkpoints.dir), save_total_limit=1,  # saves: SaveEvery; keep the last
            num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
            lr_scheduler_type=cfg.lr_scheduler, max_length=cfg.max_length, completion_only_loss=True,
            logging_steps=cfg.logging_steps, save_strategy="no", report_to="none", seed=cfg.seed,
            data_seed=cfg.seed, disable_tqdm=no_step_bar(),
            dataset_kwargs={"skip_prepare_dataset": True},  # prepared above
            **trainer_flags(device, cfg.precision, compile_model=cfg.compile,
                           checkpointing=cfg.activation_checkpointing),
        )
        saves = [] if checkpoints is None else [SaveEvery(cfg.checkpoint_minutes, checkpoints.on_save)]
        trainer = quiet_callbacks(SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                                             callbacks=[LogLines(f"{name} sft"), *saves, *callbacks]))
        if resume is not None:
            log.info("%s sft: resuming from step %s (checkpoint %s)", name,
                     resume.name.removeprefix(CHECKPOINT_PREFIX), resume)
        start = time.perf_counter()
        with labelled_positions_only(device):
            out = trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
        seconds = time.perf_counter() - start
    if checkpoints is not None:  # trained: nothing left to resume
        shutil.rmtree(checkpoints.dir, ignore_errors=True)
    unpatch_forward(model)  # copies of the model must run their own weights (see unpatch_forward)
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    log.info("%s sft: %d examples, %d steps, mean train loss %.4f, last logged loss %.4f, %.1fs", name, len(data),
             out.global_step, out.training_loss, losses[-1] if losses else float("nan"), seconds)
    return SftResult(losses, out.global_step, seconds, len(data))
