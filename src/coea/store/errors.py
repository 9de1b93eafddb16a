"""Typed errors of the serving store and the GCS export."""

from __future__ import annotations

from coea.errors import CoeaInputError


class StoreError(CoeaInputError):
    """Bad input to the store or the export (a ``ValueError``).

    ``str(err)`` is one line naming the source, the column or value that is wrong, and the fix.
    """


class ExportError(RuntimeError):
    """An export that could not finish (after retries). No manifest was written, so readers saw nothing."""
