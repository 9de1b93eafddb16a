"""A run or output folder's ``config.json`` while a command that writes it last works (:func:`replacing_config`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coea.config import config_to_dict
from coea.errors import CoeaInputError
from coea.utils import atomic_path

log = logging.getLogger(__name__)


@contextmanager
def replacing_config(cfg: Any, path: Path) -> Iterator[None]:
    """Around the work of a command that writes its ``config.json`` (``path``) last (``coea group``, ``coea evaluate``
    without ``--from-run``: both train into the folder): a config.json that records other settings than ``cfg`` is
    removed first, so a re-run with other settings that stops half-way (Ctrl-C, a crash) leaves no config.json beside
    its partial outputs to be read as their settings by a later ``--run``/``--from-run`` (which then refuses the
    unfinished step by its lineage: ``coea group`` clears ``dsie/lineage.json`` when it starts). A re-run the command
    refuses (bad input, a full disk: :class:`CoeaInputError` or :class:`OSError`) puts it back, leaving the earlier run
    whole. The same settings keep it; a file that is not valid JSON counts as other settings."""
    path = Path(path)
    old = path.read_bytes() if path.is_file() else None
    if old is not None and not _records(old, cfg):
        path.unlink(missing_ok=True)
        log.info("%s: removed (it recorded other settings; the new one is written when this command ends)", path)
    else:
        old = None
    try:
        yield
    except (CoeaInputError, OSError):
        if old is not None and not path.exists():
            with atomic_path(path) as tmp:
                tmp.write_bytes(old)
        raise


def _records(saved: bytes, cfg: Any) -> bool:
    """Whether a saved config.json's bytes hold ``cfg``'s settings (False when they are not valid JSON)."""
    try:
        return json.loads(saved.decode("utf-8")) == json.loads(json.dumps(config_to_dict(cfg), default=str))
    except (ValueError, UnicodeDecodeError):
        return False
