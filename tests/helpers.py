"""Test helpers shared across test modules (import as ``tests.helpers``)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ML_DIR = REPO.parent / "shared" / "data" / "ml-1m"

# CI (.ci/run sets CI=true) provides everything the suite needs: there a missing tool or data set fails the tests
# that need it instead of skipping them (a broken set-up must not pass as a green run)
ON_CI = bool(os.environ.get("CI"))


class WarningCollector(logging.Handler):
    """A log handler keeping the messages of WARNING and above (``messages``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def skip_unless(available: bool, reason: str) -> pytest.MarkDecorator:
    """``skipif(not available)`` off CI; on CI the test runs (and fails on the missing piece)."""
    return pytest.mark.skipif(not available and not ON_CI, reason=reason)


requires_movielens = skip_unless(
    (ML_DIR / "movies.dat").is_file(),
    f"MovieLens-1M not found at {ML_DIR} (research-use data is read from ../shared, never copied)",
)


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``name`` filled by ``build(folder)`` ONCE per test session: under pytest-xdist the first worker
    to take the file lock builds it in the session's shared temp folder and the others wait and reuse it (a
    failed build leaves no marker, so the next asker builds again). Callers only read it, or copy it."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / name, root / f"{name}.done"
    with FileLock(f"{folder}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


@contextlib.contextmanager
def cli_loggers(*, clear: bool = False) -> Iterator[None]:
    """The ``coea`` and ``pipelines`` loggers (those the CLI's ``setup_logging`` configures) restored afterwards (with
    ``clear``: without handlers inside, so the CLI adds its own on the stderr of this moment): an in-process CLI call
    leaves a handler on the stderr of its moment, a capture that a later test no longer has (its records would fail
    there with '--- Logging error ---'). A test's own handler (a collector) stays in place without ``clear``."""
    from coea.utils import PROJECT_LOGGERS

    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    saved = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers = [] if clear else list(logger.handlers)
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.level, logger.propagate = handlers, level, propagate


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``coea ARGV`` in this process: (exit code, stdout, stderr); the loggers restored afterwards."""
    from coea.cli import main

    with cli_loggers():
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def coea(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``coea ARGS`` run in this process (``coea.cli.main``) as ``python -m coea.cli ARGS`` would run in ``cwd``
    (default: the repository): its exit code, stdout and stderr (the ``coea`` log lines included, as the CLI's log
    setup writes them there; an unexpected exception: its traceback and exit code 1). The ``coea`` and ``pipelines``
    loggers are restored afterwards. A test about the process itself uses :func:`coea_process`."""
    from coea.cli import main

    out, err = io.StringIO(), io.StringIO()
    with cli_loggers(clear=True), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            contextlib.chdir(cwd or REPO):  # the CLI's setup_logging adds its handler on the stderr captured here
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:  # sys.exit(message): the message on stderr, exit code 1
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except Exception:  # noqa: BLE001  (a subprocess would print it and exit 1)
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(["coea", *args], code, out.getvalue(), err.getvalue())


def coea_process(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess:
    """``python -m coea.cli ARGS`` in a child process (cwd: the repository unless given; env: this process's unless
    given), output captured."""
    return subprocess.run([sys.executable, "-m", "coea.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=300)


def one_error(capsys, tmp_path: Path, spec: str, *extra: str, command: str = "evaluate") -> str:
    """Run ``command`` (``evaluate`` with ``--out``, or ``data stats``, which writes nothing) on ``spec``; assert
    exit 2, exactly one error line, no traceback and, for ``evaluate``, no ``--out`` folder left behind."""
    out = tmp_path / "out"
    argv = ["evaluate", "--out", str(out)] if command == "evaluate" else ["data", "stats"]
    code, _, err = run_cli([*argv, "--data", spec, *extra], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "Traceback" not in err, err
    assert not out.exists()
    return errors[0]


def events(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """A canonical frame from (user, item, category, timestamp) tuples."""
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])


def tiny_causal_lm(path: Path, words: list[str], *, seed: int = 0, spare_rows: int = 0, tied: bool = False) -> Path:
    """Save a randomly initialised 1-layer Llama and a word-level tokenizer over ``words`` to ``path``;
    ``spare_rows`` embedding rows beyond the tokenizer's (Qwen2.5 pads its vocabulary: 152064 rows, 151665
    tokens); ``tied``: the output head is the input embedding (Qwen2.5 0.5B-3B)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab) + spare_rows, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=tied)
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def assert_artifact_page(page: str) -> None:
    """``page`` is a self-contained HTML page for a Kubeflow HTML artifact (:mod:`coea.html_artifact`): a
    doctype line, then well-formed XML (every tag closed) with an ``html`` root; no base64 images, nothing loaded
    from elsewhere; within HTML_ARTIFACT_LIMIT bytes."""
    import xml.etree.ElementTree as ET

    from coea.html_artifact import HTML_ARTIFACT_LIMIT, external_references, page_bytes

    doctype, body = page.split("\n", 1)
    assert doctype == "<!doctype html>"
    assert ET.fromstring(body).tag == "html"
    assert "data:image" not in page and external_references(page) == []
    assert 0 < page_bytes(page) <= HTML_ARTIFACT_LIMIT
