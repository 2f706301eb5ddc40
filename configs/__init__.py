"""Typed configuration for zpd-engine.

One :class:`ZPDConfig` is loaded once (``load_config``) from ``configs/default.toml``, optionally
merged with a user file, and passed down explicitly. Environment variables override only URLs and
secrets (see ``ENV_OVERRIDES``). This package imports no other project package.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "CatalogConfig",
    "ConfigError",
    "DATA_BASE",
    "DEFAULT_CONFIG_PATH",
    "ENV_OVERRIDES",
    "GraphConfig",
    "MLflowConfig",
    "GateConfig",
    "ModelConfig",
    "PlannerConfig",
    "SCORE_COMPONENTS",
    "ServingConfig",
    "StoreConfig",
    "TrainingConfig",
    "XapiConfig",
    "ZPDConfig",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.toml")
#: the folder the default configuration's relative data folder (``var``) is under: the project's.
#: The test suite points it at a folder of its own, so that no test reads or writes the data a
#: ``make serve`` keeps there (a model registered as champion there would be served to the tests)
DATA_BASE = DEFAULT_CONFIG_PATH.parent.parent

#: environment variable -> (section, field). Only locations (URLs, the data folder) and secrets
#: belong here. Later entries win: ``ZPD_MLFLOW_TRACKING_URI`` is an alias of MLflow's own
#: ``MLFLOW_TRACKING_URI`` that takes precedence when both are set.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "ZPD_DATA_DIR": ("serving", "data_dir"),
    "ZPD_STORE_URL": ("store", "url"),
    "MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
    "ZPD_MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
    "ZPD_MODEL_URI": ("serving", "model_uri"),
}
#: a default store or tracking URI names its file inside the data folder with this placeholder
DATA_DIR_PLACEHOLDER = "{data_dir}"


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphConfig(_Section):
    source: str = "bundled"
    prerequisite_association_types: tuple[str, ...] = ("precedes",)
    grouping_item_types: tuple[str, ...] = ("Domain", "Cluster")
    #: how the source's codes compare: "ccss" reads every spelling of a CCSS standard as one code
    #: and other codes exactly, "exact" reads every code exactly (the bundled graph is always "ccss")
    codes: Literal["ccss", "exact"] = "ccss"
    #: the columns of the source's edge table (prerequisites.csv, or an edge-list file)
    columns: dict[str, str] = {}

    @field_validator("columns")
    @classmethod
    def _edge_roles(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {"prerequisite", "dependent", "delimiter"})
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; expected prerequisite, dependent, delimiter")
        return value

    @field_validator("prerequisite_association_types")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one association type must count as a prerequisite")
        return value


class CatalogConfig(_Section):
    source: str = "bundled"
    generate_missing: bool = True


#: The components of a candidate's score (engine.planner.scoring), in the order they are reported
#: and summed; ``[planner.weights]`` gives each a weight.
SCORE_COMPONENTS: tuple[str, ...] = (
    "band_fit",
    "gain",
    "goal",
    "spacing",
    "time_cost",
    "modality",
    "interest",
    "novelty",
    "exploration",
    "mastery_check",
    "priority",
    "focus",
    "locality",
)


class PlannerConfig(_Section):
    """How the planner scores, gates and schedules (see engine.planner)."""

    band: tuple[float, float] = (0.60, 0.85)
    mastery_threshold: float = 0.95
    streak_required: int = 2
    confirm_streak: int = Field(3, ge=1, le=5)  # the progress record keeps the last 6 outcomes
    require_check: bool = True
    #: successes in a row past ``streak_required`` that mastery waits for a passed check before it
    #: takes the practice alone (0: it waits for ever)
    check_wait: int = Field(4, ge=0)
    reopen_threshold: float = 0.7
    test_out_threshold: float = 0.9
    likely_known: float = 0.6
    ready_threshold: float = 0.85
    objectives: int = 3
    presume_missing: bool = True
    park_after: int = 5
    stall_after: int = 18
    recheck_after: int = Field(7, ge=0)
    park_for: int = 10
    reverify_after_s: float = 86_400.0
    review_interval_s: float = 2 * 86_400.0
    review_growth: float = 2.5
    implicit_review_share: float = 0.3
    struggle_failures: int = 3
    struggle_window: int = 4
    novelty_window: int = 8
    exploration: float = 0.15
    max_per_standard: int = 2
    #: at most this share of a learner's activities in a day are mastery checks or test-outs
    max_check_share: float = Field(0.25, ge=0.0, le=1.0)
    #: a learner with nothing to place them yet (no grade and no answer, or a diagnostic not finished)
    #: starts a playlist or a rotation with the entry diagnostic, for this long (0: never)
    entry_diagnostic_minutes: float = Field(20.0, ge=0.0, le=240.0)
    activities_per_standard: float = 5.0
    #: the GPS: what the route takes until every goal standard is mastered at once, over what
    #: mastering each of them once costs (reviews, re-checks, remediation, reopened standards)
    route_overhead: float = Field(3.0, gt=0.0)
    #: the GPS's range: the route overhead of the quarter of learners fastest and of the quarter
    #: slowest, over the median (half of the learners arrive within the estimate times these)
    route_spread: tuple[float, float] = (0.6, 1.6)
    #: the route overhead and range of particular goals ("+"-joined sorted goal codes -> [overhead,
    #: low, high]); ``route_overhead`` and ``route_spread`` count for any other goal. What
    #: ``zpd plan-batch`` measures for a goal once enough of a tenant's students reached it
    #: (``serving.calibration``); it may be set by hand too
    goal_route: dict[str, tuple[float, float, float]] = {}
    minutes_per_day: float = 45.0
    school_days_per_week: float = 5.0
    weights: dict[str, float] = {
        "band_fit": 1.0,
        "gain": 1.0,
        "goal": 1.0,
        "spacing": 0.8,
        "time_cost": 0.3,
        "modality": 0.3,
        "interest": 0.3,
        "novelty": 0.6,
        "exploration": 0.5,
        "mastery_check": 0.8,
        "priority": 3.0,
        "focus": 1.0,
        "locality": 1.0,
    }
    modality_preference: dict[str, float] = {
        "online_practice": 1.0,
        "video": 0.7,
        "reading": 0.6,
        "small_group": 0.8,
        "tutoring": 0.8,
        "project": 0.6,
        "assessment": 0.5,
    }

    @field_validator("weights")
    @classmethod
    def _known_components(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(SCORE_COMPONENTS))
        if unknown:
            raise ValueError(
                f"unknown score component(s) {', '.join(unknown)}; the components are {', '.join(SCORE_COMPONENTS)}"
            )
        return value

    @field_validator("route_spread")
    @classmethod
    def _spread_around_one(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 < low <= 1.0 <= high:
            raise ValueError(f"route_spread must satisfy 0 < low <= 1 <= high, got {list(value)}")
        return value

    @field_validator("goal_route")
    @classmethod
    def _goal_route_valid(cls, value: dict[str, tuple[float, float, float]]) -> dict[str, tuple[float, float, float]]:
        for goal, (overhead, low, high) in value.items():
            if overhead <= 0.0 or not 0.0 < low <= 1.0 <= high:
                raise ValueError(
                    f"goal_route[{goal!r}] must be [overhead > 0, low, high] with 0 < low <= 1 <= high, "
                    f"got {[overhead, low, high]}"
                )
        return value

    @field_validator("band")
    @classmethod
    def _band_in_order(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 < low < high < 1.0:
            raise ValueError(f"band must satisfy 0 < low < high < 1, got {list(value)}")
        return value


class ServingConfig(_Section):
    # the model to serve; falls back to the bundled model, then to graph BKT
    model_uri: str = "models:/zpd-learner@champion"
    # seconds between checks of the model alias for a new version (0: only POST /v1/model/reload)
    model_poll_s: float = 0.0
    # seconds between checks for a model, catalog or framework another worker changed (0: never)
    sync_s: float = Field(2.0, ge=0.0)
    # tenants' own models (PUT /v1/model/tenant) each worker holds at once (about 5 MiB each with
    # the bundled catalog): more are loaded on their tenant's request, the least recently served
    # set aside to make room
    tenant_models_loaded: int = Field(16, ge=1)
    max_batch_events: int = 1000
    # larger request bodies are refused (413) before they are read
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # a roster upload (POST /v1/rosters, a district's OneRoster zip) may be this large
    max_roster_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    # how long POST /v1/rosters waits for its import before answering 202 with the import to
    # follow (RFC 7240: "Prefer: respond-async" answers 202 at once, "Prefer: wait=N" waits less)
    roster_wait_s: float = Field(10.0, ge=0.0)
    # a roster upload this large or larger is imported in a process of its own: a district's
    # import holds gigabytes for a minute, which the worker then keeps, and a core; a school's
    # stays in the worker (a process takes seconds to start)
    roster_apart_bytes: int = Field(4 * 1024 * 1024, ge=0)
    # the tenants whose roster each worker reads as it starts, in the background and paced, so
    # that a teacher's first request after a start does not wait for it (a district's: seconds,
    # and about 170 MB a worker); "*": every tenant that has a roster and an API key; []: a copy is
    # read when a request first needs it
    roster_prefetch: list[str] = Field(default_factory=lambda: ["*"])
    key_cache_s: float = 2.0
    # threads per worker running request handlers (CPU-bound under the GIL: more threads than
    # this only add switching; a worker waits on the store in at most this many at once)
    request_threads: int = Field(4, ge=1, le=256)
    # threads per worker storing event batches and xAPI statements, apart from the request
    # threads: a burst of large batches waits for these, never holding up the other routes
    ingest_threads: int = Field(2, ge=1, le=256)
    # threads per worker running the admin routes that may take seconds (PUT /v1/items, a
    # standards import, erasures, a model through the promotion gate), apart from the request
    # threads: several at once wait for these, never holding up the other routes
    admin_threads: int = Field(2, ge=1, le=256)
    # where the default SQLite store, MLflow's database and the demo key live; a relative folder is
    # taken relative to the config file that names it (the project's own for the default)
    data_dir: str = "var"


class XapiConfig(_Section):
    """How xAPI statements are read (engine.xapi): what each verb is evidence of (merged over the
    defaults for the ADL verbs; values: success, failure, scored, exposure, ignore), the extension
    naming an activity's standards, and whether contextActivities ids count as standards."""

    verbs: dict[str, str] = {}
    standards_extension: str = "https://w3id.org/zpd-engine/xapi/extensions/standards"
    context_activities: bool = True

    @field_validator("verbs")
    @classmethod
    def _known_evidence(cls, value: dict[str, str]) -> dict[str, str]:
        kinds = ("success", "failure", "scored", "exposure", "ignore")
        bad = {verb: kind for verb, kind in value.items() if kind not in kinds}
        if bad:
            raise ValueError(f"verbs map to one of {', '.join(kinds)}; got {bad}")
        return value


class CaliperConfig(_Section):
    """How IMS Caliper events are read (engine.caliper): what each ``Type/Action`` is evidence of
    (merged over the defaults; values: scored, exposure; an event not listed is skipped), and what
    names the learner: the Person's ``id``, or a type of its ``otherIdentifiers`` (Caliper 1.2's
    ``OneRosterSourcedId``, ``SisSourcedId``, ``LtiUserId``...)."""

    actions: dict[str, str] = {}
    learner_identifier: str = Field("id", pattern=r"^[A-Za-z][A-Za-z0-9]*$")

    @field_validator("actions")
    @classmethod
    def _known_evidence(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {key: kind for key, kind in value.items() if kind not in ("scored", "exposure")}
        if bad:
            raise ValueError(f"actions map to scored or exposure; got {bad}")
        shapeless = [key for key in value if key.count("/") != 1]
        if shapeless:
            raise ValueError(f"actions are keyed by Type/Action (e.g. GradeEvent/Graded); got {shapeless}")
        return value


class StoreConfig(_Section):
    url: str = "sqlite:///{data_dir}/zpd.db"


class MLflowConfig(_Section):
    tracking_uri: str = "sqlite:///{data_dir}/mlflow.db"
    registered_model: str = "zpd-learner"
    #: the registered model a tenant's own model is registered under (``{tenant}``: its id); a
    #: tenant's admin may serve the tenant a version of that model only (``PUT /v1/model/tenant``)
    tenant_registered_model: str = "zpd-learner-{tenant}"

    @field_validator("tenant_registered_model")
    @classmethod
    def _names_the_tenant(cls, value: str) -> str:
        if value.count("{tenant}") != 1 or "/" in value or "@" in value:
            raise ValueError(f"must name the tenant once as {{tenant}}, without '/' or '@', got {value!r}")
        return value

    def tenant_model(self, tenant: str) -> str:
        """The registered model ``tenant``'s own models are registered under."""
        return self.tenant_registered_model.replace("{tenant}", tenant)


class ModelConfig(_Section):
    """Hyper-parameters per learner-state model, merged over the model class's ``defaults``
    (e.g. ``models.dkt.DKTModel.defaults``); a key the model does not know fails at training."""

    #: graph BKT, the model for standards without data (alone, or inside a hybrid): the planner's
    #: own parameters (see ``models.bkt.DEFAULTS`` for the rest)
    bkt: dict[str, float] = {"p_learn": 0.25, "down": 0.5}
    logistic: dict[str, Any] = {}
    dkt: dict[str, Any] = {}
    akt: dict[str, Any] = {}
    zpd: dict[str, Any] = {}


class TrainingConfig(_Section):
    """The training loop of ``zpd train`` (training.train)."""

    epochs: int = 30
    seed: int = 0
    # None = the model's own default (models.*.learning_rate)
    learning_rate: float | None = None
    weight_decay: float = 0.0
    # a batch holds learners of similar length: at most this many (learners x longest) positions
    batch_tokens: int = 8192
    max_batch_learners: int = 128
    # early stopping on the validation AUC: stop after `patience` epochs without a gain of min_delta
    patience: int = 3
    min_delta: float = 1e-4
    grad_clip: float = 1.0
    # intra-op threads per training process: small recurrent models are fastest with 1 (OpenMP
    # barriers dominate tiny matmuls, and on a shared machine 2 threads can be 10x slower);
    # use torchrun to put more cores to work
    threads: int = 1
    # learner shares held out when the data has no valid / test split of its own
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    # MLflow experiment of training runs
    experiment: str = "zpd-learner"

    @field_validator("epochs", "batch_tokens", "max_batch_learners", "patience", "threads")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("valid_fraction", "test_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 < value < 0.5:
            raise ValueError(f"must be in (0, 0.5), got {value}")
        return value


class GateConfig(_Section):
    """The promotion gate (models.gate) every promotion and every server reload passes."""

    #: share of the deployment's standards, and of its catalog items, the trained part must know
    min_standard_coverage: float = Field(0.05, ge=0.0, le=1.0)
    min_item_coverage: float = Field(0.05, ge=0.0, le=1.0)
    #: standard deviation of a new learner's predictions over the covered items
    min_spread: float = Field(1e-3, ge=0.0)
    #: a challenger may trail the champion on recent held-out events by at most this much
    max_auc_drop: float = Field(0.005, ge=0.0, le=1.0)
    max_log_loss_rise: float = Field(0.005, ge=0.0)


class ZPDConfig(_Section):
    graph: GraphConfig = GraphConfig()
    catalog: CatalogConfig = CatalogConfig()
    planner: PlannerConfig = PlannerConfig()
    serving: ServingConfig = ServingConfig()
    store: StoreConfig = StoreConfig()
    mlflow: MLflowConfig = MLflowConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    xapi: XapiConfig = XapiConfig()
    caliper: CaliperConfig = CaliperConfig()
    gate: GateConfig = GateConfig()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _place_data_dir(data: dict[str, Any], base: Path) -> None:
    """Make the data folder absolute (relative to ``base``) and put it into the URLs that name
    their file inside it, so no default depends on the working directory."""
    serving = data.setdefault("serving", {})
    folder = Path(str(serving.get("data_dir", "var"))).expanduser()
    folder = folder if folder.is_absolute() else (base / folder)
    serving["data_dir"] = str(folder.resolve())
    for section, key in (("store", "url"), ("mlflow", "tracking_uri")):
        value = data.get(section, {}).get(key)
        if isinstance(value, str) and DATA_DIR_PLACEHOLDER in value:
            data[section][key] = value.replace(DATA_DIR_PLACEHOLDER, serving["data_dir"])


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> ZPDConfig:
    """Load the default config, merge ``path`` over it, then apply URL/secret env overrides.

    >>> load_config().graph.source
    'bundled'
    """
    env = os.environ if env is None else env
    data = _read_toml(DEFAULT_CONFIG_PATH)
    source = DEFAULT_CONFIG_PATH
    if path is not None:
        source = Path(path)
        data = _merge(data, _read_toml(source))
    data_dir_base = DATA_BASE  # the project's folder, for the default
    if path is not None and "data_dir" in _read_toml(source).get("serving", {}):
        data_dir_base = source.resolve().parent
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            data.setdefault(section, {})[key] = env[var]
            if var == "ZPD_DATA_DIR":
                data_dir_base = Path.cwd()
    _place_data_dir(data, data_dir_base)
    try:
        return ZPDConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{source}: invalid configuration: {problems}") from None
