"""RunLayout: the one description of a run folder.

Every command, the in-process flow, the kfp.local runner and the report read and write a run through it::

    <root>/
      data/                 prepared data (coea.data.prepared)
      dsie/                 groups, profiles, report, encoder and RQ-VAE weights (coea.dsie.artifact)
      llm/novelty/, llm/relevance/, llm/sft_metrics*.json, llm/llm_config.json   the SFT models (coea.llm.run)
      pco/                  PCO rounds, pco_state.json, pco_metrics.json/.png (coea.pco)
      metrics.json, metrics.md, metrics_at_K.png, eval_report.html   the evaluation (coea.stages.evaluate)
      config.json           the run config (`coea group`, the evaluation): later commands' default --config
      recommendations.parquet, seen.parquet, recs.sqlite, served.json, report.html, state/, kfp/
      INCOMPLETE.txt        only in a `coea run` folder whose run stopped after some steps (which ones), or was killed
                            while its outputs were copied in; the commands that read a run refuse it

dsie/, llm/novelty/, llm/relevance/ and pco/ each hold a lineage.json once complete (coea.lineage): what they were
made from, checked by the commands that combine them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ArtifactDirs:
    """Where a stage finds the fitted artifacts its methods need (None = not available)."""

    dsie: Path | None = None
    llm: tuple[Path, ...] = ()  # dirs holding novelty/ and relevance/ (one dir, or one per model)
    pco: Path | None = None


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run folder (nothing is created by building it)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dsie(self) -> Path:
        return self.root / "dsie"

    @property
    def llm(self) -> Path:
        return self.root / "llm"

    @property
    def pco(self) -> Path:
        return self.root / "pco"

    @property
    def eval(self) -> Path:
        """The evaluation writes metrics.json & co. at the top of the run."""
        return self.root

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def recommendations(self) -> Path:
        return self.root / "recommendations.parquet"

    @property
    def seen(self) -> Path:
        """Every user's categories (user_id, category), written by the recommend step for the state."""
        return self.root / "seen.parquet"

    @property
    def kv_store(self) -> Path:
        return self.root / "recs.sqlite"

    @property
    def served(self) -> Path:
        """What the run served: ``{"method": "coea_seq+x", "k": 10}`` (written by ``coea run``)."""
        return self.root / "served.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def kfp(self) -> Path:
        return self.root / "kfp"

    @property
    def incomplete(self) -> Path:
        """Written by `coea run` when its run stopped after some steps finished (:func:`pipelines.local.unfinished`)."""
        return self.root / "INCOMPLETE.txt"

    def artifacts(self) -> ArtifactDirs:
        """The run's fitted artifacts, each only when its folder exists."""
        return ArtifactDirs(dsie=self.dsie if self.dsie.is_dir() else None,
                            llm=(self.llm,) if self.llm.is_dir() else (),
                            pco=self.pco if self.pco.is_dir() else None)
