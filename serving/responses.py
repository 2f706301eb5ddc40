"""The API's answers as typed models: what the OpenAPI document declares and every response is
checked against. Times are ISO-8601 (UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from serving.schemas import BLOCKS_DONE

__all__ = [
    "ActivityOut",
    "DeletedOut",
    "ErrorOut",
    "GoalOut",
    "GoalSetOut",
    "ImportOut",
    "ItemOut",
    "ItemsOut",
    "ItemWithdrawnOut",
    "ItemsPutOut",
    "LearnerOut",
    "LearnersOut",
    "ModelOut",
    "NextOut",
    "OverridesOut",
    "OverridesSetOut",
    "PlacementOut",
    "PlaylistOut",
    "ProfileOut",
    "ReadyOut",
    "RosterImportJobOut",
    "RosterImportsOut",
    "ReloadOut",
    "RotationOut",
    "StandardOut",
    "StatusOut",
    "UnalignedOut",
]


class ItemOut(BaseModel):
    id: str
    title: str
    standards: list[str]
    modality: str
    duration_minutes: float
    difficulty: float | None = None
    url: str | None = None
    tags: list[str] = []
    language: str | None = None
    source: str | None = None
    mastery_check: bool = False
    withdrawn: bool = False


class AlternativeOut(BaseModel):
    item: ItemOut
    standard: str
    p_success: float
    score: float


class RecommendationOut(BaseModel):
    item: ItemOut
    standard: str
    kind: str = Field(description="learn, test_out, remediation, recheck, reverify, review, explore or pinned")
    p_success: float = Field(description="predicted probability of success, in (0, 1)")
    score: float
    components: dict[str, float] = Field(description="each score component in [0, 1], before weighting")
    reasons: list[str]
    alternatives: list[AlternativeOut] = Field(description="other items on the same standard (student choice)")


class FlagOut(BaseModel):
    standard: str
    reason: str
    suggested_modality: str
    remediation: str | None = None


class EmptyOut(BaseModel):
    code: Literal["no_items", "nothing_ready", "none_allowed", "none_fits"] = Field(
        description="no_items: the catalog has no item on the framework's standards; nothing_ready: nothing is "
        "ready to learn or due for review; none_allowed: the items of what is ready are excluded, unavailable "
        "or not of the kinds asked for; none_fits (playlists): none of them fits in the time"
    )
    message: str


class NextOut(BaseModel):
    learner_id: str
    model_version: str
    recommendations: list[RecommendationOut]
    flags: list[FlagOut]
    empty: EmptyOut | None = Field(default=None, description="with no recommendation: why there is none")


class ActivityOut(BaseModel):
    start_minute: float
    minutes: float
    modality: str
    item: ItemOut
    standard: str
    kind: str
    p_success: float | None = None
    reasons: list[str]
    alternatives: list[AlternativeOut]
    group: str | None = None


class PlaylistBody(BaseModel):
    session_minutes: float
    activities: list[ActivityOut]
    free_minutes: float
    flags: list[FlagOut]
    route: list[str]
    empty: EmptyOut | None = Field(default=None, description="with no activity: why there is none")


class PlaylistOut(PlaylistBody):
    learner_id: str
    model_version: str


class GroupOut(BaseModel):
    id: str
    standard: str
    item: ItemOut
    learners: list[str]
    block: int
    start_minute: float
    minutes: float
    reason: str


class RotationOut(BaseModel):
    class_id: str
    model_version: str | list[str]
    session_minutes: float
    block_minutes: float
    groups: list[GroupOut]
    playlists: dict[str, PlaylistBody]
    station_load: list[dict[str, int]]
    diagnostic_unseated: list[str] = Field(
        default_factory=list,
        description="learners nothing places yet whom the assessment station had no seat for, as long as the "
        "entry diagnostic takes, in this session (their plan goes on without it)",
    )
    blocks_done: int = Field(default=0, description=BLOCKS_DONE)


class OwnPaceOut(BaseModel):
    """How fast the learner has actually been working."""

    activities_per_day: float = Field(description="activities per calendar day over the last `days` days")
    days: int = Field(description="the days measured: the last 28, or since the first activity when more recent")
    estimated_days: float | None = Field(
        description="the days the rest of the route takes at this pace (null: no goal, or no activity over those days)"
    )
    estimated_days_range: list[float] | None = Field(
        None,
        description="[low, high]: the days within which half of the learners at this pace arrive (null with no "
        "estimate, or with the goal reached)",
    )


class StatusOut(BaseModel):
    goal: list[str]
    route: list[str]
    mastered_on_goal: int
    goal_standards: int
    estimated_activities: float
    estimated_minutes: float
    estimated_days: float = Field(description="the days the rest of the route takes at the planned pace")
    estimated_days_range: list[float] | None = Field(
        None,
        description="[low, high]: the days within which half of the learners arrive at the planned pace (the estimate "
        "times the route's spread, measured like its overhead); null with no route left",
    )
    due: datetime | None = None
    status: str = Field(
        description="reached, on_track, not_started (on track at the planned pace, but no practice yet: an entry "
        "diagnostic is none), at_risk, no_date, no_goal, or blocked (a goal standard no catalog item practises); once "
        "the learner has worked for a week, on track or not is judged at their own pace"
    )
    explanation: str
    own_pace: OwnPaceOut | None = Field(
        None,
        description="the learner's own pace and the estimate at it, after a week of work (null before), goal or not",
    )
    route_overhead: float = Field(
        1.0,
        description="what the estimate multiplies the cost of mastering each standard of the route once by (reviews, "
        "re-checks, standards reopened until all are mastered at once): measured from the tenant's own arrivals at "
        "their goals once its nightly plans have seen enough of them, else the deployment's configured value",
    )


class GoalRouteOut(BaseModel):
    """A goal whose GPS estimates count a route overhead of their own."""

    goal: list[str] = Field(description="the goal's standard codes")
    route_overhead: float
    route_spread: list[float] = Field(description="[low, high], as factors of the estimate")
    source: Literal["measured", "configured"]
    samples: int | None = Field(description="the arrivals at this goal measured (null: set in the configuration)")


class GpsOut(BaseModel):
    """How the tenant's GPS counts a route to a goal."""

    route_overhead: float = Field(
        description="what the estimate multiplies the cost of mastering each standard of the route once by"
    )
    route_spread: list[float] = Field(
        description="[low, high]: the estimate's range as factors of it (half of the learners arrive within it)"
    )
    source: Literal["measured", "configured"] = Field(
        description="measured: from the tenant's students who reached their goal (nightly plans); configured: the "
        "deployment's values (measured with simulated learners), until enough of the tenant's have arrived"
    )
    samples: int | None = Field(
        description="the arrivals at a goal measured at the last nightly run (null: no nightly run has measured yet)"
    )
    on_the_way: int | None = Field(
        None,
        description="the students on their way to a goal at the last nightly run (and those who left the school "
        "on the way), counted as arriving later than what they have done so far (null: no nightly run has "
        "measured yet)",
    )
    needed: int = Field(description="the arrivals needed before the tenant's own measure counts")
    measured_at: datetime | None = Field(description="when the last nightly run measured (null: never)")
    goals: list[GoalRouteOut] = Field(
        [],
        description="goals whose estimates count an overhead of their own: measured from the tenant's students who "
        "reached that goal once there are enough of them (or set in the deployment's configuration)",
    )


class GoalOut(BaseModel):
    standards: list[str]
    date: datetime | None = None


class OverridesOut(BaseModel):
    pin_standards: list[str]
    pin_items: list[str]
    exclude_items: list[str]
    lock_goal: bool


class PlacementSummaryOut(BaseModel):
    grade_band: str
    confidence: float
    questions: int
    mastered: list[str]


class MasteryOut(BaseModel):
    p: float
    uncertainty: float
    evidence: int
    status: str = Field(description="mastered, in_progress, likely_known or not_started")


class EvidenceOut(BaseModel):
    id: str
    item_id: str
    standards: list[str]
    correct: float | None = None
    timestamp: datetime
    source: str
    kind: str


class ProfileOut(BaseModel):
    learner_id: str
    model_version: str
    interests: list[str]
    grade: str | None = None
    level: float | None = None
    goal: GoalOut | None = None
    overrides: OverridesOut
    gps: StatusOut
    mastered: list[str]
    placement: PlacementSummaryOut | None = None
    mastery: dict[str, MasteryOut]
    recent_evidence: list[EvidenceOut]
    events: int
    updated: datetime | None = None


class LearnerOut(BaseModel):
    learner_id: str
    interests: list[str]
    grade: str | None = None


class LearnerSummary(BaseModel):
    learner_id: str
    grade: str | None = None
    events: int
    updated: datetime | None = None


class LearnersOut(BaseModel):
    total: int
    learners: list[LearnerSummary]
    #: the ``after`` of the next page; None on the last page (a full page may be followed by an empty one)
    next: str | None = None


class GoalSetOut(BaseModel):
    learner_id: str
    goal: GoalOut


class OverridesSetOut(BaseModel):
    learner_id: str
    overrides: OverridesOut


class DeletedOut(BaseModel):
    learner_id: str
    deleted: bool


class ErasedOut(BaseModel):
    #: the learners of whom something existed, every trace of them now erased
    erased: list[str]
    #: the ids given that named no learner (nothing was stored under them)
    unknown: list[str]


class QuestionOut(BaseModel):
    standard: str
    item: ItemOut | None = None


class PlacementOut(BaseModel):
    learner_id: str
    asked: int
    max_questions: int
    finished: bool
    question: QuestionOut | None = None
    grade_band: str
    confidence: float
    mastered: list[str] | None = None


class CodeName(BaseModel):
    code: str | None = None
    name: str | None = None


class StandardOut(BaseModel):
    code: str
    description: str | None = None
    grade: str | None = None
    domain: CodeName
    cluster: CodeName
    parent: str | None = None
    parts: list[str]
    aliases: list[str]
    prerequisites: list[str]
    dependents: list[str]
    related: list[str]
    items: list[str]


class ItemsOut(BaseModel):
    total: int
    items: list[ItemOut]


class ItemsPutOut(BaseModel):
    created: int
    updated: int
    items: int
    learners_rebuilt: int
    #: items already in the tenant's catalog whose standards this change changed
    realigned: list[str] = []
    notes: list[str] = []


class ItemWithdrawnOut(BaseModel):
    withdrawn: str  # the item's id
    standards: list[str]  # what answers on it still count on
    items: int  # the items the tenant is offered now


class UnalignedActivity(BaseModel):
    item_id: str
    events: int
    learners: int
    first_seen: datetime


class UnalignedOut(BaseModel):
    total: int
    activities: list[UnalignedActivity]


class ImportOut(BaseModel):
    title: str | None = None
    standards: int
    prerequisite_edges: int
    items_kept: int
    items_dropped: int
    model_version: str
    warnings: list[str]


class DeploymentOut(BaseModel):
    applied_versions: dict[str, int]
    last_error: str | None = None


class GateCheckOut(BaseModel):
    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    detail: str


class GateOut(BaseModel):
    model: str
    passed: bool
    checks: list[GateCheckOut]


class ModelOut(BaseModel):
    version: str | None = None
    name: str | None = None
    source: str | None = Field(default=None, description="where the model was loaded from (keys with operator scope)")
    loaded_at: datetime | None = None
    last_error: str | None = Field(
        default=None, description="why the last load failed (the reason itself for keys with operator scope)"
    )
    gate: GateOut | None = Field(default=None, description="the promotion gate's report on the serving model")
    forced: str | None = Field(default=None, description="why the model serves although it failed the gate")
    scope: Literal["deployment", "tenant"] = Field(
        default="deployment",
        description="whose model serves the tenant: the deployment's, or the tenant's own (PUT /v1/model/tenant)",
    )
    tenant_models: dict[str, str] | None = Field(
        default=None,
        description="operator keys only: the tenants served a model of their own, and its version (each worker holds "
        "the most recently served, [serving] tenant_models_loaded, and loads the others on their next request)",
    )
    not_registered: list[str] | None = Field(
        default=None,
        description="operator keys only: the configured model URIs passed over at start-up because nothing is "
        "registered there yet (a fresh registry, not a failure: the next choice serves until one is)",
    )
    deployment: DeploymentOut | None = None


class ReloadOut(ModelOut):
    previous: str


class ReadyOut(BaseModel):
    status: str
    store: str
    model_version: str | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable code, e.g. unknown_learner, invalid_event, busy")
    message: str
    field: str | None = Field(None, description="the field at fault, as a JSON path (events[3].result.success)")
    problems: list[dict[str, Any]] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class RosterImportOut(BaseModel):
    counts: dict[str, int] = Field(description="records of the roster after the import, by kind")
    changes: dict[str, dict[str, int]] = Field(description="per kind: added, updated, removed")
    grades_set: int = Field(description="rostered students whose grade was set from the roster")
    notes: list[str]
    import_id: str | None = Field(None, description="the import's id (GET /v1/rosters/imports/{import_id})")


class ImportProgress(BaseModel):
    phase: Literal["reading", "parsing", "merging", "roster", "grades"] = Field(
        description="reading the upload from the store, parsing its files, merging them into the roster and "
        "checking its references, writing the roster's records (in steps), setting the students' grades (in "
        "chunks of 500)"
    )
    done: int
    total: int


class RosterImportJobOut(BaseModel):
    import_id: str
    status: Literal["queued", "running", "done", "failed"]
    submitted: datetime = Field(description="when the upload was accepted")
    started: datetime | None = Field(None, description="when the last attempt started")
    finished: datetime | None = None
    bytes: int = Field(description="the upload's size")
    attempts: int = Field(description="starts so far (a worker that stopped leaves the import to another)")
    progress: ImportProgress | None = Field(None, description="while running")
    result: RosterImportOut | None = Field(None, description="when done: what POST /v1/rosters answers")
    error: ErrorDetail | None = Field(None, description="when failed: why")


class RosterImportsOut(BaseModel):
    imports: list[RosterImportJobOut] = Field(description="the tenant's last 50 roster imports, newest first")


class ClassSummary(BaseModel):
    class_id: str
    title: str
    code: str
    school: str | None
    school_name: str | None
    grades: list[str]
    students: int
    teachers: list[str] = Field(description="the teachers' names")


class ClassesOut(BaseModel):
    total: int
    classes: list[ClassSummary]
    #: the ``after`` of the next page; None on the last page
    next: str | None = None


class ClassMember(BaseModel):
    learner_id: str = Field(description="the pseudonymous id (the learner id of a student)")
    name: str
    role: str
    grade: str | None


class ClassOut(ClassSummary):
    members: list[ClassMember]


class ClassGoalOut(BaseModel):
    class_id: str
    goal: GoalOut
    learners: list[str]


class StoredRotationOut(RotationOut):
    date: str
    planned_at: datetime
    learners: list[str]
    gps: dict[str, StatusOut] = Field(description="each student's GPS when the plan was made")
    withdrawn_since: list[str] = Field(
        default=[],
        description="items of the plan withdrawn from the tenant's offer since it was made (re-run the date to plan "
        "without them)",
    )


class LtiDeploymentOut(BaseModel):
    issuer: str
    deployment_id: str
    label: str | None = None


class LtiDeploymentsOut(BaseModel):
    deployments: list[LtiDeploymentOut] = Field(
        description="the platform deployments whose LTI launches are this tenant's: a Caliper event launched "
        "from another one is refused (403); none: not checked"
    )
