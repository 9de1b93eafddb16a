"""One dataclass config per stage. YAML in, JSON beside every output.

Each field is documented where it is declared; ``__post_init__`` raises ``ValueError`` naming a bad value.
``load_run_config(path)`` reads a YAML file whose top-level sections are the stage names below, plus the one
plain key ``device`` (auto | cpu | cuda | cuda:N, see :mod:`coea.device`); unknown keys are errors, never
silently ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coea.config_values import from_dict, read_yaml, unknown_names
from coea.config_values import typed_value as typed_value  # re-exported: components/settings.py
from coea.device import check_device_spec
from coea.dsie.config import DsieConfig
from coea.errors import CoeaInputError
from coea.llm.sft_config import LlmConfig
from coea.pco.config import PcoConfig
from coea.utils import as_enum, check_seed, write_json_atomic

log = logging.getLogger(__name__)


class CategoryLevel(enum.StrEnum):
    """How a MovieLens genre string becomes a category."""

    FULL = "full"  # the whole genre string, e.g. "Comedy|Romance" (301 categories on ml-1m)
    FIRST = "first"  # the first genre only, e.g. "Comedy" (18 categories)


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def parse_as_of(text: str) -> datetime:
    """An as-of instant as an aware UTC datetime: ISO 8601 (``2026-11-30T00:00:00Z``, ``2026-11-30T01:00+01:00``;
    no zone = UTC) or a date (``2026-11-30`` = its midnight UTC). A ValueError names a bad value."""
    try:
        when = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError) as err:
        raise ValueError(f"as_of must be an ISO 8601 time such as 2026-11-30T00:00:00Z, got {text!r}") from err
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass
class SyntheticConfig:
    """Planted-structure generator for the default data set (see ``coea.data.synthetic``)."""

    seed: int = 7
    n_users: int = 600  # users to simulate
    n_categories: int = 40  # category vocabulary size
    n_groups: int = 6  # planted long-term taste groups
    items_per_category: int = 25  # catalogue items in each category
    mean_interactions: int = 60  # mean events per user (Poisson, floored at min_interactions)
    min_interactions: int = 30  # every user gets at least this many events
    core_categories: int = 6  # categories each group concentrates its taste on
    popularity_exponent: float = 1.1  # Zipf exponent of global category popularity (long tail)
    explore_rate: float = 0.12  # chance an event adopts a category new to the user
    focus_strength: float = 3.0  # boost of the user's current short-term focus category
    focus_length: int = 12  # mean number of events before the short-term focus shifts
    span_days: int = 180  # scale of the time axis: users start within 0.3x of it, sessions spread over ~0.6x
    # An injected interest shift (off by default: None leaves the log exactly as without these fields). The log
    # is cut into ``shift_periods`` equal-count time periods (``coea.data.split.split_periods``, as ``coea
    # simulate --periods`` cuts it); from the start of period ``shift_period`` on, the events of a
    # ``shift_strength`` share of the users move to the category half the popularity ranking away (the
    # popular half and the tail half swap), and they stay moved: a lasting change of taste, with activity
    # and diversity unchanged.
    shift_period: int | None = None  # first shifted period, 1 .. shift_periods - 1; None = no shift
    shift_periods: int = 4  # number of equal-count time periods the shift is placed in
    shift_strength: float = 1.0  # share of users whose interests shift, in (0, 1]

    def __post_init__(self) -> None:
        for name in ("n_users", "n_categories", "n_groups", "items_per_category", "mean_interactions",
                     "min_interactions", "core_categories", "focus_length", "span_days", "shift_periods"):
            _positive(name, getattr(self, name))
        check_seed("seed", self.seed)
        if self.shift_period is not None and not 1 <= self.shift_period < self.shift_periods:
            raise ValueError(f"shift_period must be in 1 .. shift_periods - 1 = {self.shift_periods - 1} (or None "
                             f"for no shift), got {self.shift_period!r}")
        if not 0.0 < self.shift_strength <= 1.0:
            raise ValueError(f"shift_strength must be in (0, 1], got {self.shift_strength!r}")
        if self.core_categories > self.n_categories:
            raise ValueError(f"core_categories ({self.core_categories}) > n_categories ({self.n_categories})")
        if not 0.0 <= self.explore_rate < 1.0:
            raise ValueError(f"explore_rate must be in [0, 1), got {self.explore_rate!r}")
        _positive("popularity_exponent", self.popularity_exponent, allow_zero=True)
        _positive("focus_strength", self.focus_strength, allow_zero=True)
        events = self.n_users * max(self.mean_interactions, self.min_interactions)
        if events > MAX_SYNTHETIC_EVENTS or self.n_users * self.n_categories > MAX_SYNTHETIC_EVENTS:
            raise ValueError(f"n_users {self.n_users} x {max(self.mean_interactions, self.min_interactions)} events "
                             f"(and x {self.n_categories} categories) is beyond what the generator builds in memory "
                             f"(at most {MAX_SYNTHETIC_EVENTS:,} each); lower n_users")


# the synthetic generator holds every event, and every user's affinity to every category, in memory
MAX_SYNTHETIC_EVENTS = 50_000_000


@dataclass
class DataConfig:
    """Where the interaction log comes from and how its columns map to the canonical ones."""

    # synthetic | movielens:DIR | csv:PATH | parquet:PATH; PATH may be gs://BUCKET/OBJECT, or a folder (local or
    # gs://BUCKET/PREFIX/) of dt=YYYY-MM-DD/ partitions (coea.data.partitions)
    spec: str = "synthetic"
    category_level: CategoryLevel = CategoryLevel.FULL  # MovieLens only
    user_col: str = "user_id"  # csv/parquet: name of the user column in the file
    item_col: str = "item_id"
    category_col: str = "category"
    timestamp_col: str = "timestamp"
    rating_col: str | None = "rating"  # optional; absent columns are fine
    on_category_conflict: str = "majority"  # item with several categories: "majority" (warn) or "fail"
    # timestamps are Unix seconds from 1990-01-01 to now (ms/us/ns columns converted); True takes any number as
    # it is (an order key: no unit conversion, no range check)
    allow_any_timestamp: bool = False
    # partitioned layouts: read the dt=YYYY-MM-DD partitions whose day (UTC) ended by this instant (ISO 8601, e.g.
    # 2026-11-30T00:00:00Z; no zone = UTC; a date = its midnight). None = every partition; the pipelines pass the
    # run's scheduled time when this is None. A single file or the synthetic generator ignores it.
    as_of: str | None = None
    window_days: int = 0  # partitioned layouts: only the last N days before as_of (0 = every day before it)
    gcs_retry_s: float = 60.0  # gs:// reads: retry network errors, 429 and 5xx for up to this many seconds

    def __post_init__(self) -> None:
        self.category_level = as_enum(CategoryLevel, "category_level", self.category_level)
        if self.as_of is not None:
            parse_as_of(self.as_of)
        _positive("window_days", self.window_days, allow_zero=True)
        _positive("gcs_retry_s", self.gcs_retry_s, allow_zero=True)
        if not self.spec:
            raise ValueError("data spec is empty; use synthetic, movielens:DIR, csv:PATH or parquet:PATH")
        if self.category_level is not CategoryLevel.FULL and not self.spec.startswith("movielens:"):
            raise ValueError(f"category_level {self.category_level.value!r} applies to movielens: logs only (data "
                             f"{self.spec!r} has its categories as they are); drop it")
        if self.on_category_conflict not in ("majority", "fail"):
            raise ValueError(f"on_category_conflict must be 'majority' or 'fail', got {self.on_category_conflict!r}")


@dataclass
class SplitConfig:
    """Leakage-free per-user chronological protocol (see ``coea.data.split``)."""

    n_future: int = 10  # last interactions of each user held out for scoring
    n_short: int = 10  # last history interactions whose categories form the short-term set
    min_history: int = 5  # users with fewer history interactions are cold-start
    min_gap: int = 0  # seconds; history keeps only events at least this long before the first future one
    short_window: int | None = None  # seconds; if set, short-term = categories within this window instead
    # True = score on a VALIDATION window: each user's last n_future events (the test future) are removed first
    # and never read, then the protocol runs on what is left; choose settings here, report them on the test split
    validation: bool = False

    def __post_init__(self) -> None:
        _positive("n_future", self.n_future)
        _positive("n_short", self.n_short)
        _positive("min_history", self.min_history)
        _positive("min_gap", self.min_gap, allow_zero=True)
        if self.short_window is not None:
            _positive("short_window", self.short_window)


# What the pipelines serve by default: the N-LLM after PCO ranked with the DSIE encoder beside it (coea_seq),
# history categories excluded. Chosen on MovieLens validation (docs/results.md, session 18): above coea+x in every
# training measured there (5 of 5), +0.0079 [+0.0018, +0.0144] over users and paired trainings.
SERVED_METHOD = "coea_seq+x"
MAX_BOOTSTRAP = 1_000_000  # eval.bootstrap's bound: the paired bootstrap's time grows with replicates x users


@dataclass
class EvalConfig:
    """Which methods to score, at which cut-offs."""

    methods: list[str] = field(
        default_factory=lambda: ["random", "pop", "pop_novel", "markov", "markov+x", "cooc_novel", "ease_novel",
                                 "sasrec", "sasrec+x", "sasrec_ease+x", "group_pop_novel", "nllm_sft", "nllm_sft+x",
                                 "dual_best_of_n", "coea", "coea+x", SERVED_METHOD]
    )
    ks: list[int] = field(default_factory=lambda: [5, 10])
    seed: int = 0  # seeds the random baseline and any sampling
    long_tail_share: float = 0.8  # head = most popular categories holding this share of history events
    reference: str | None = None  # paired CIs compare every method with this one (None = the best baseline)
    bootstrap: int = 2000  # paired bootstrap replicates (users resampled with replacement)
    ci_level: float = 0.95  # level of the paired bootstrap percentile intervals
    # PCO's per-round judge metric (coea.evaluation.pco_metrics): the R-LLM ranks every unseen category of at most
    # this many evaluated users (seeded subsample; U x C prompts per round); 0 = off
    judge_users: int = 300
    # PCO's per-round metrics (coea.evaluation.pco_metrics) on at most this many evaluated users (seeded subsample,
    # the same every round; the judge's users are drawn among them); 0 = every evaluated user (U x K R-LLM prompts
    # per round: bound it for large logs)
    round_users: int = 0

    def __post_init__(self) -> None:
        self.methods = list(dict.fromkeys(self.methods))
        check_seed("seed", self.seed)
        _positive("judge_users", self.judge_users, allow_zero=True)
        _positive("round_users", self.round_users, allow_zero=True)
        if not self.methods:
            raise ValueError("methods is empty; name at least one, e.g. pop,markov")
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ValueError(f"ks must be positive integers, got {self.ks!r}")
        self.ks = sorted(set(self.ks))
        if not 0.0 < self.long_tail_share < 1.0:
            raise ValueError(f"long_tail_share must be in (0, 1), got {self.long_tail_share!r}")
        if self.reference is not None and self.reference not in self.methods:
            raise ValueError(f"reference {self.reference!r} is not among the methods {self.methods!r}; "
                             "add it to methods or leave reference unset (= the best baseline)")
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 1:
            raise ValueError(f"bootstrap must be a positive number of replicates, e.g. 2000, got {self.bootstrap!r}")
        if self.bootstrap > MAX_BOOTSTRAP:
            raise ValueError(f"bootstrap must be at most {MAX_BOOTSTRAP:,} replicates (each one resamples every "
                             f"evaluated user, for every method), got {self.bootstrap!r}; e.g. 2000")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), e.g. 0.95, got {self.ci_level!r}")


@dataclass
class RunConfig:
    """Everything ``coea run`` needs: the device switch and one config section per stage."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N for every model and tensor of every stage (auto = cuda if any)
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dsie: DsieConfig = field(default_factory=DsieConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    pco: PcoConfig = field(default_factory=PcoConfig)

    def __post_init__(self) -> None:
        self.device = check_device_spec(self.device)
        self._check_positions()

    def _check_positions(self) -> None:
        """A scratch model's ``max_position_embeddings`` is the longest prompt + completion it takes: it must cover
        the ``max_length`` of every training of that model (SFT, and PCO's DPO and refreshes)."""
        if not self.llm.model.is_scratch:  # a pretrained model brings its own positions
            return
        lengths = {"llm.novelty.max_length": self.llm.novelty.max_length,
                   "llm.relevance.max_length": self.llm.relevance.max_length,
                   "pco.dpo.max_length": self.pco.dpo.max_length,
                   "pco.relevance_refresh.max_length": self.pco.relevance_refresh.max_length,
                   "pco.novelty_refresh.max_length": self.pco.novelty_refresh.max_length}
        positions = self.llm.model.max_position_embeddings
        over = {key: n for key, n in lengths.items() if n > positions}
        if over:
            longest = max(over.values())
            raise ValueError(f"llm.model.max_position_embeddings {positions} is below "
                             f"{', '.join(f'{key} {n}' for key, n in over.items())}: it is the longest prompt + "
                             f"completion the scratch model takes; raise llm.model.max_position_embeddings to at "
                             f"least {longest}, or lower those max_length keys to at most {positions}")


def check_cutoffs(cfg: RunConfig, n_categories: int, *, ks: bool = True, pco: bool = False) -> None:
    """Refuse a cut-off above the log's ``n_categories`` (:class:`CoeaInputError` naming the key, its value and the
    count), once the categories are known and before anything trains: ``eval.ks`` when ``ks`` (the evaluation
    runs), ``pco.k`` when ``pco`` (PCO runs). A top-K list holds at most ``n_categories`` categories, so C-H@K would
    be 1 for any full list and the shares that divide by K (NCP, CLTP, S-P) would shrink with K. K equal to the
    count (rank every category) is fine."""
    checks = [("eval.ks", list(cfg.eval.ks))] if ks else []
    checks += [("pco.k", [cfg.pco.k])] if pco else []
    for key, values in checks:
        over = [k for k in values if k > n_categories]
        if not over:
            continue
        shown = values if key == "eval.ks" else values[0]
        fix = sorted({k for k in values if k <= n_categories} | {n_categories}) if key == "eval.ks" else min(
            10, n_categories)
        option = " (or --k)" if key == "eval.ks" else ""
        big, cats = over[-1], f"{n_categories} categor{'y' if n_categories == 1 else 'ies'}"
        raise CoeaInputError(f"{shown} has K={big} above the {cats} of the log: a top-{big} list holds at most "
                             f"{cats}, so C-H@{big} would be 1 for any full list and "
                             "the shares that divide by K (NCP, CLTP, S-P) would shrink", option=key,
                             fix=f"set {key}{option} to at most {n_categories}, e.g. {key}: {fix}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; enums become their values."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(cfg)


def save_config(cfg: Any, path: Path) -> None:
    """Write a config as JSON (atomically) so the output beside it describes itself."""
    write_json_atomic(path, config_to_dict(cfg))


def read_saved_config(cls: type, path: Path) -> Any:
    """Rebuild config ``cls`` from the JSON written beside an output by :func:`save_config`.

    Outputs written before the one device switch saved a per-section ``device``; it is dropped, because the
    device is now chosen when a model is loaded (``device=``), never by the file.
    """
    return from_dict(cls, _saved_values(path), where=str(path))


def read_run_json(path: Path) -> RunConfig:
    """The RunConfig a run folder's ``config.json`` (:func:`save_config`) records, read as JSON: through the YAML
    loader a character outside the BMP (``\ud83d\ude00`` in the file) came back as two lone surrogates. Its
    ``device`` is dropped as :func:`read_saved_config` drops a section's: the device is the command's (``--device``,
    else auto), so a run made with ``--device cuda`` is read, scored or continued on a machine without one."""
    values = _saved_values(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the top level must be a mapping of sections")
    return run_config_from_dict(values, where=str(path))


def _saved_values(path: Path) -> Any:
    """The JSON in ``path`` without its top-level ``device`` (the device is chosen where the config is used)."""
    values = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(values, dict):
        values.pop("device", None)
    return values


PRESETS = {"cpu": "built-in defaults, sized for 2 CPU cores",
           "gpu": "larger scratch LLMs on every example, GPU batch sizes",
           "short": "logs of short histories (5-15 events a user), day-resolution timestamps",
           "distil": "PCO distilling the DSIE encoder into the N-LLM (the ordered history in its prompt)",
           "quick": "every stage at a toy size: a smoke test of a new log in minutes, not a result"}


def preset_path(name: str) -> Path | None:
    """The packaged YAML of preset ``name`` (a key of :data:`PRESETS`), or None when ``name`` is no preset."""
    return Path(__file__).with_name("presets") / f"{name}.yaml" if name in PRESETS else None


def config_source(path: Path) -> Path:
    """The file ``--config path`` reads: ``path``, or the packaged preset a bare name like ``gpu`` names (see
    :data:`PRESETS`). A regular file of a preset's name in the working directory wins, with a warning naming both;
    anything else of that name (a folder) is no config file, so the name is the preset's."""
    preset = preset_path(str(path))
    if preset is None or not Path(path).is_file():
        return Path(path) if preset is None else preset
    log.warning("--config %s: reading the file %s in the working directory, not the packaged preset %s (%s); rename "
                "the file to use the preset", path, Path(path).resolve(), path, preset)
    return Path(path)


def load_run_config(path: Path | None) -> RunConfig:
    """Read a YAML run config (or the preset a bare name names: :func:`config_source`); missing sections and keys
    keep their defaults, None is the built-in defaults."""
    return RunConfig() if path is None else read_run_yaml(config_source(Path(path)))


def read_run_yaml(path: Path) -> RunConfig:
    """The run config of the YAML file ``path``. An empty one (nothing but comments) is refused: it would silently
    be the built-in defaults, synthetic data included, which leaving ``--config`` out says."""
    raw = read_yaml(path)
    if raw is None:
        raise CoeaInputError("empty config: it holds no section (nothing, or only comments)", source=path,
                             fix="leave --config out for the built-in defaults, or write the sections to change "
                                 "(README 'Configuration')")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping of sections")
    return run_config_from_dict(raw, where=str(path))


def run_config_from_dict(raw: dict[str, Any], *, where: str) -> RunConfig:
    """A RunConfig from a mapping shaped like the YAML file: section name -> mapping, plus the plain top-level
    keys (``device``); missing ones keep their defaults, unknown ones raise ValueError prefixed by ``where``."""
    sections = {f.name: f for f in dataclasses.fields(RunConfig) if f.default_factory is not dataclasses.MISSING}
    plain = {f.name for f in dataclasses.fields(RunConfig)} - set(sections)  # top-level keys: device
    unknown = sorted(set(raw) - set(sections) - plain, key=str)
    if unknown:
        listed = f"{', '.join(sorted(sections))} and the plain key(s) {', '.join(sorted(plain))}"
        raise ValueError(f"{where}: {unknown_names('section', unknown, [*sections, *plain], known_text=listed)}")
    kwargs: dict[str, Any] = {name: raw[name] for name in plain if raw.get(name) is not None}
    for name, fld in sections.items():
        section_cls = fld.default_factory().__class__  # type: ignore[misc]
        values = {} if raw.get(name) is None else raw[name]  # a missing or null section means the defaults
        if not isinstance(values, dict):
            raise ValueError(f"{where} [{name}] must be a section (a mapping of keys), got {values!r}; write e.g. "
                             f"{name}: {{key: value}} or its keys indented below it, or leave it out (or null) "
                             "for the defaults")
        kwargs[name] = from_dict(section_cls, values, where=f"{where} [{name}]")
    try:
        return RunConfig(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
