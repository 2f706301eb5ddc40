"""Request and response bodies of the HTTP API (pydantic), and event normalization.

Events arrive as native objects (``id``, ``learner_id``, ``item_id``, ``correct`` or ``score``,
``timestamp``) or as xAPI statements (``id``, ``actor.account.name``, ``object.id``,
``result.success`` / ``result.score.scaled``, ``timestamp``). Both become :class:`IncomingEvent`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, WithJsonSchema

from engine.caliper import is_caliper_event, parse_event
from engine.catalog import Modality
from engine.planner.playlist import MIN_BLOCK_MINUTES
from engine.xapi import STANDARDS_EXTENSION, StatementError, check_time, comparable, parse_statement, parse_time
from serving.groups import copy_id
from serving.stores.base import event_time

__all__ = [
    "GRADE_PATTERN",
    "ID_PATTERN",
    "AboutNoLearner",
    "CaliperAccepted",
    "CaliperOptions",
    "EventError",
    "ForeignDeployment",
    "IRI_PATTERN",
    "ITEM_ID_PATTERN",
    "MAX_ITEM_ID",
    "IncomingEvent",
    "LtiDeploymentsIn",
    "XapiOptions",
    "check_item_id",
    "normalize_event",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127}$"
#: a grade label the grade scale knows (case does not matter)
GRADE_PATTERN = r"^([Pp][Kk]|[Kk][Gg]?|[Hh][Ss]|[1-9]|1[0-2])$"
_ID = re.compile(ID_PATTERN)
#: an absolute IRI (an xAPI activity id): a scheme, then no spaces or controls
IRI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f]+$"
#: an item id: a plain id or an activity IRI (how xAPI names every activity)
ITEM_ID_PATTERN = f"^(?:{ID_PATTERN[1:-1]}|{IRI_PATTERN[1:-1]})$"
#: the longest item id (xAPI sets no limit on an IRI, nor does Ralph, and a statement refused for
#: a long activity IRI would make an LRS drop its whole batch; 8 kB is what web servers take in a
#: request line)
MAX_ITEM_ID = 8192
_ITEM_ID = re.compile(ITEM_ID_PATTERN)


class EventError(ValueError):
    """An event is malformed; ``field`` is a JSON path like ``events[3].result.success``."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class ForeignDeployment(EventError):
    """An event launched from a platform deployment that is none of the tenant's (LTI)."""


class AboutNoLearner(EventError):
    """A statement xAPI allows that is about no learner (an anonymous group without members):
    acknowledged and named in the answer's warnings, not stored; refusing it would make an LRS
    drop the batch it came in."""


class IncomingEvent(BaseModel):
    """An event as the service folds it. ``kind``: ``answer`` (``correct`` in [0, 1]), ``exposure``
    or ``ignored`` (stored, not evidence) or ``void`` (``voids`` names the voided event).
    ``timestamp_given``: the sender gave the time (otherwise it is the receive time, which is not
    part of the content: a retry without a timestamp is the same event)."""

    model_config = ConfigDict(frozen=True)

    id: str
    learner_id: str
    item_id: str
    correct: float | None
    timestamp: float
    source: Literal["native", "xapi", "caliper"] = "native"
    kind: Literal["answer", "exposure", "ignored", "void"] = "answer"
    standards: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()  # standards the statement names (codes or CASE identifiers), unresolved
    voids: str | None = None
    timestamp_given: bool = True
    statement: str | None = None  # an xAPI statement's (LRS fields left out) or a Caliper event's content
    #: ``(field, problem)`` pairs: what the reader set aside (see ``lenient`` in
    #: :func:`engine.xapi.parse_statement`), or a time ahead of the server's clock
    warnings: tuple[tuple[str, str], ...] = ()
    #: a member's copy of an anonymous group's statement: the statement's id (see :mod:`serving.groups`)
    group: str | None = None

    def content(self) -> dict[str, Any]:
        """What a repeated id must match to count as the same event."""
        if self.statement is not None:
            return {"statement": self.statement}
        return {
            "learner_id": self.learner_id,
            "item_id": self.item_id,
            "correct": self.correct,
            "timestamp": self.timestamp if self.timestamp_given else None,
        }


class XapiOptions(BaseModel):
    """How statements are read (``[xapi]`` in the config)."""

    verbs: dict[str, str] | None = None
    standards_extension: str = STANDARDS_EXTENSION
    context_activities: bool = True


class CaliperOptions(BaseModel):
    """How Caliper events are read (``[caliper]`` in the config, see :mod:`engine.caliper`):
    ``actions`` is the whole table, the configuration merged over the defaults (None: the
    defaults)."""

    actions: dict[str, str] | None = None
    learner_identifier: str = "id"
    #: the tenant's LTI deployments, (issuer, deployment id): a launch from another is refused
    #: (None: the tenant registered none, nothing is checked)
    deployments: frozenset[tuple[str, str]] | None = None


def _require(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise EventError(where, "expected an object")
    if obj.get(key) is None:
        raise EventError(f"{where}.{key}" if where else key, "is required")
    return obj[key]


def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise EventError(where, f"must be an id of 1-128 characters (letters, digits, . _ : @ -), got {value!r}")
    return value


def check_item_id(value: Any, where: str) -> str:
    """An item id: a plain id, or an activity IRI (how xAPI names every activity)."""
    if isinstance(value, str) and len(value) <= MAX_ITEM_ID and _ITEM_ID.match(value):
        return value
    shown = value[:200] + "..." if isinstance(value, str) and len(value) > 200 else value
    raise EventError(
        where,
        f"must be an item id (letters, digits, . _ : @ -) or an activity IRI of at most {MAX_ITEM_ID:,} characters, "
        f"got {shown!r}",
    )


def _timestamp(value: Any, where: str) -> float:
    """An ISO-8601 time (naive: UTC) or epoch seconds, between 1970 and 2100."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise StatementError(where, f"must be an ISO-8601 time or epoch seconds, got {value!r}", "bad_timestamp")
        if isinstance(value, str):
            return parse_time(value, where)[0]
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            raise StatementError(where, "must be a time between 1970 and 2100", "bad_timestamp") from None
        return check_time(seconds, where, value)
    except StatementError as exc:
        raise EventError(where, exc.problem) from None


def _outcome(correct: Any, score: Any, where: str, score_range: tuple[float, float]) -> float:
    if correct is not None:
        if isinstance(correct, bool):
            return 1.0 if correct else 0.0
        if isinstance(correct, (int, float)) and correct in (0, 1):
            return float(correct)
        raise EventError(f"{where}.correct" if where else "correct", f"must be true/false or 0/1, got {correct!r}")
    if score is None:
        raise EventError(where or "event", "needs 'correct' or 'score'")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise EventError(f"{where}.score" if where else "score", f"must be a number, got {score!r}")
    low, high = score_range
    if not low <= score <= high:
        raise EventError(f"{where}.score" if where else "score", f"must be in [{low:g}, {high:g}], got {score!r}")
    return float(min(1.0, max(0.0, score)))


def normalize_event(
    raw: Any,
    where: str,
    now: float,
    tenant: str = "",
    xapi: XapiOptions | None = None,
    caliper: CaliperOptions | None = None,
) -> list[IncomingEvent]:
    """Turn a native event, an xAPI statement or a Caliper event into :class:`IncomingEvent` s:
    one, or one per member of an anonymous group (ids ``STATEMENT_ID:MEMBER_HASH``, the same
    whatever the order of the members, so a resend is a duplicate); xAPI statements are read by
    :func:`engine.xapi.parse_statement` (the reader training uses too), Caliper events by
    :func:`engine.caliper.parse_event`. A time more than
    :data:`~serving.stores.base.CLOCK_AHEAD_S` ahead of ``now`` is a device's clock set wrong: it
    is kept as sent, the learner's state reads the arrival time (``StoredEvent.time``), and the
    first event warns."""
    events = _events(raw, where, now, tenant, xapi, caliper)
    sent = events[0].timestamp
    if not events[0].timestamp_given or event_time(sent, now) == sent:
        return events
    ahead = sent - now
    note = (
        f"{where}.timestamp",
        f"is {_span(ahead)} ahead of the server's clock (a device's clock set wrong?); read as the time it arrived",
    )
    return [events[0].model_copy(update={"warnings": (*events[0].warnings, note)}), *events[1:]]


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def _events(
    raw: Any, where: str, now: float, tenant: str, xapi: XapiOptions | None, caliper: CaliperOptions | None
) -> list[IncomingEvent]:
    if not isinstance(raw, dict):
        raise EventError(where, "expected an event object")
    if is_caliper_event(raw):
        return [_caliper(raw, where, tenant, caliper or CaliperOptions())]
    if "actor" in raw or "verb" in raw or "object" in raw:
        return _statement(raw, where, now, tenant, xapi or XapiOptions())
    event_id = _check_id(_require(raw, "id", where), f"{where}.id")
    learner = _check_id(_require(raw, "learner_id", where), f"{where}.learner_id")
    item = check_item_id(_require(raw, "item_id", where), f"{where}.item_id")
    kind = raw.get("kind", "answer")
    if kind not in ("answer", "exposure"):
        raise EventError(f"{where}.kind", f"must be 'answer' or 'exposure', got {kind!r}")
    correct: float | None = None
    if kind == "answer":
        correct = _outcome(raw.get("correct"), raw.get("score"), where, (0.0, 1.0))
    elif raw.get("correct") is not None or raw.get("score") is not None:
        field = "correct" if raw.get("correct") is not None else "score"
        raise EventError(f"{where}.{field}", "an exposure sends no answer: leave out 'correct' and 'score'")
    given = raw.get("timestamp") is not None
    stamp = _timestamp(raw["timestamp"], f"{where}.timestamp") if given else now
    return [
        IncomingEvent(
            id=event_id,
            learner_id=learner,
            item_id=item,
            correct=correct,
            timestamp=stamp,
            kind=kind,
            timestamp_given=given,
        )
    ]


def _statement(raw: dict[str, Any], where: str, now: float, tenant: str, options: XapiOptions) -> list[IncomingEvent]:
    try:
        parsed = parse_statement(
            raw,
            tenant=tenant,
            verbs=options.verbs,
            standards_extension=options.standards_extension,
            context_activities=options.context_activities,
            where=where,
            lenient=True,  # what xAPI allows is kept (an LRS drops a refused batch), with a warning
        )
    except StatementError as exc:
        if exc.reason == "no_learner" and raw.get("id") is not None:
            raise AboutNoLearner(exc.field or where, f"{exc.problem}: not stored") from None
        raise EventError(exc.field or where, exc.problem) from None
    if parsed.id is None:
        raise EventError(f"{where}.id", "is required (an LRS assigns one; a platform sending directly must too)")
    if not _ID.match(parsed.id):
        raise EventError(f"{where}.id", f"must be a UUID or a plain id, got {parsed.id!r}")
    if parsed.kind != "void":
        check_item_id(parsed.item, f"{where}.object.id")
    event = IncomingEvent(
        id=parsed.id,
        learner_id=parsed.learner,
        item_id=parsed.item,
        correct=parsed.outcome,
        timestamp=parsed.timestamp if parsed.timestamp is not None else now,
        source="xapi",
        kind=parsed.kind,
        hints=parsed.standards,
        voids=parsed.voids,
        timestamp_given=parsed.timestamp is not None,
        statement=comparable(raw),
        warnings=tuple((aside.field, aside.message) for aside in parsed.set_aside),
    )
    if not parsed.members:
        return [event]
    copies = []
    for k, member in enumerate(parsed.members):  # the group's note once, with its first member
        member_id = copy_id(parsed.id, member)
        if not _ID.match(member_id):
            raise EventError(
                f"{where}.id", f"is too long for a group's statement (at most 115 characters): {parsed.id!r}"
            )
        copies.append(
            event.model_copy(
                update={
                    "id": member_id,
                    "learner_id": member,
                    "group": parsed.id,
                    "warnings": () if k else event.warnings,
                }
            )
        )
    return copies


def _caliper(raw: dict[str, Any], where: str, tenant: str, options: CaliperOptions) -> IncomingEvent:
    try:
        parsed = parse_event(
            raw,
            tenant=tenant,
            actions=options.actions,
            learner_identifier=options.learner_identifier,
            where=where,
            deployments=options.deployments,
        )
    except StatementError as exc:
        if exc.reason == "no_learner":
            raise AboutNoLearner(exc.field or where, f"{exc.problem}: not stored") from None
        if exc.reason == "other_deployment":
            raise ForeignDeployment(exc.field or where, exc.problem) from None
        raise EventError(exc.field or where, exc.problem) from None
    check_item_id(parsed.item, parsed.extra["item_field"])
    assert parsed.timestamp is not None  # eventTime is required
    return IncomingEvent(
        id=parsed.id,
        learner_id=parsed.learner,
        item_id=parsed.item,
        correct=parsed.outcome,
        timestamp=parsed.timestamp,
        source="caliper",
        kind=parsed.kind,
        hints=parsed.standards,
        statement=comparable(raw),
        warnings=tuple((aside.field, aside.message) for aside in parsed.set_aside),
    )


# ---------------------------------------------------------------------------- bodies
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventWarning(BaseModel):
    """A statement kept although part of it could not be used."""

    id: str
    field: str
    message: str


class EventsAccepted(BaseModel):
    """What became of a batch. Every event is counted once in ``accepted`` (stored now) or
    ``duplicates`` (stored before), or listed in ``retry`` (its learner was busy, or another
    request stored other content under one of its ids meanwhile: not stored, send it again; a
    conflict then answers 409); ``voided`` ones were voided before they arrived, or are voids
    kept for a target that has not arrived (or whose learners were all erased). Of the accepted,
    ``unaligned`` are answers on activities the catalog does not know (kept, folded once an admin
    aligns them) and ``not_evidence`` are exposures (folded as the learner's latest activity, no
    evidence of what they know) or ignored statements (kept, not folded).
    ``warnings``: events kept although part of them could not be used (a result that
    contradicts its verb, a standards extension that is not codes, an anonymous group) or with a
    time read as their arrival (ahead of the server's clock), and statements about no learner (an
    anonymous group without members: acknowledged, not stored, counted nowhere else), each with
    its id, the field and what was wrong."""

    accepted: int
    duplicates: int
    learners: int
    unaligned: int = 0
    not_evidence: int = 0
    voided: int = 0
    retry: list[str] = Field(default_factory=list)
    warnings: list[EventWarning] = Field(default_factory=list)


class CaliperSkipped(BaseModel):
    """Entries of an envelope's ``data`` that were not stored, for one reason."""

    reason: str
    count: int
    data: list[int] = Field(description="their places in the envelope's data")


class CaliperAccepted(BaseModel):
    """What became of a Caliper envelope's ``data``: each entry that is learning evidence is
    counted once in ``accepted`` or ``duplicates`` (of the accepted, ``unaligned`` and
    ``not_evidence`` as for ``POST /v1/events``); every other entry (other events, entities) is
    in ``skipped``, with why. ``warnings``: events kept although part of them could not be used
    (a grade without a usable score, extra credit read as full marks), or about no learner
    (acknowledged, not stored)."""

    received: int
    accepted: int
    duplicates: int
    unaligned: int = 0
    not_evidence: int = 0
    skipped: list[CaliperSkipped] = Field(default_factory=list)
    warnings: list[EventWarning] = Field(default_factory=list)


def _iso_only(value: Any) -> Any:
    """An ISO-8601 date-time string (a time without a zone is UTC) in the years 1970-2099; nothing
    else (no epoch numbers, no bare numbers as text)."""
    parsed = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValueError(f"must be an ISO-8601 date-time, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1970 <= parsed.year <= 2099:  # the year as written, as the schema's pattern states it
        raise ValueError(f"must be a date-time in the years 1970-2099, got {value!r}")
    return parsed


def _number_only(value: Any) -> Any:
    """A JSON number, not a boolean or a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _integer_only(value: Any) -> Any:
    """A JSON integer (2 or 2.0, as JSON Schema counts), not a boolean, a fraction or a string."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


#: request fields take exactly their JSON type: no coercion of 0 into false or "60" into 60
#: (the validators come after a field's constraints, so the JSON schema shows the constraints)
IsoDateTime = Annotated[
    datetime,
    BeforeValidator(_iso_only),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": r"^(19[7-9][0-9]|20[0-9][0-9])-"}),
]
NUMBER = BeforeValidator(_number_only)
INTEGER = BeforeValidator(_integer_only)


class GoalIn(Strict):
    standards: list[str] = Field(
        min_length=1,
        max_length=200,
        description="standard codes of the tenant's framework (the bundled one: CCSS math)",
        examples=[["4.NF.A.1", "4.NF.B.3"]],
    )
    date: IsoDateTime | None = Field(
        default=None, description="when the goal is due", examples=["2027-05-28T00:00:00Z"]
    )


class OverridesIn(Strict):
    pin_standards: list[str] = Field(default_factory=list, max_length=50)
    pin_items: list[str] = Field(default_factory=list, max_length=50)
    exclude_items: list[str] = Field(default_factory=list, max_length=500)
    lock_goal: StrictBool | None = None


class OverridesDelete(Strict):
    pin_standards: list[str] = Field(default_factory=list)
    pin_items: list[str] = Field(default_factory=list)
    exclude_items: list[str] = Field(default_factory=list)
    lock_goal: StrictBool = False
    all: StrictBool = False


class LearnerIn(Strict):
    interests: list[str] = Field(default_factory=list, max_length=20)
    grade: str | None = Field(default=None, pattern=GRADE_PATTERN, description="K, 1-12 or HS (PK too)")


class ErasureIn(Strict):
    learner_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        min_length=1, max_length=1000, description="The learners to erase (at most 1,000 a request)"
    )


#: whether a plan starts an unplaced learner with the entry diagnostic
EntryDiagnostic = Annotated[
    StrictBool,
    Field(
        description="a learner nothing places yet (no grade and no answer, or an entry diagnostic not finished) "
        "starts with the entry diagnostic ([planner] entry_diagnostic_minutes, at the assessment station)"
    ),
]


class PlaylistIn(Strict):
    session_minutes: Annotated[float, Field(gt=0, le=480), NUMBER] = 60
    modalities: list[Modality] | None = None
    goal: GoalIn | None = None
    alternatives: Annotated[int, Field(ge=0, le=5), INTEGER] = 2
    entry_diagnostic: EntryDiagnostic = True


#: what ``blocks_done`` means, for the request and the answer
BLOCKS_DONE = (
    "the session's first blocks are over: plan the rest from what the students did in them (times and blocks stay "
    "the session's); fewer than the session's blocks. Plan again after each block: a plan made at the start of "
    "the day is stale once a block is over. A lesson with the teacher (a small group, tutoring) sends no answer: "
    "send each of its students an exposure (POST /v1/events, kind: exposure) first, or the rest gathers them on "
    "the same standard again"
)


class RotationIn(Strict):
    learners: list[str] | None = Field(
        default=None, min_length=1, max_length=60, description="default: the rostered class's students"
    )
    session_minutes: Annotated[float, Field(ge=MIN_BLOCK_MINUTES, le=480), NUMBER] = 60
    block_minutes: Annotated[
        float, Field(ge=MIN_BLOCK_MINUTES, le=240, description="longer than the session: one block"), NUMBER
    ] = 20
    capacities: dict[Modality, Annotated[int, Ge(0), INTEGER]] = Field(
        default_factory=dict, description="seats per station (modality) in each block"
    )
    group_capacity: Annotated[int, Field(ge=1, le=30), INTEGER] = 6
    teachers: Annotated[int, Field(ge=1, le=5), INTEGER] = 1
    modalities: list[Modality] | None = None
    entry_diagnostic: EntryDiagnostic = True
    blocks_done: Annotated[int, Field(ge=0, le=95, description=BLOCKS_DONE), INTEGER] = 0


class PlacementAnswerIn(Strict):
    standard: str
    correct: StrictBool
    event_id: str | None = Field(default=None, pattern=ID_PATTERN)
    item_id: str | None = None


#: why a model serves although it fails the promotion gate (kept with the model)
ForceReason = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=500,
        pattern=r"\S",
        description="serve the model even if it fails the promotion gate, for this reason (kept with the model)",
    ),
]


class ModelReloadIn(Strict):
    uri: str | None = None
    force_reason: ForceReason = None


class TenantModelIn(Strict):
    uri: str = Field(
        min_length=1,
        max_length=500,
        pattern=r"^models:/[^/@]+(/[0-9]+|@[^/@]+)$",
        description="a version of the tenant's registered model (`[mlflow] tenant_registered_model`): "
        "`models:/NAME@ALIAS` (followed when the alias moves, with `[serving] model_poll_s`) or `models:/NAME/N`",
        examples=["models:/zpd-learner-district-7@champion"],
    )
    force_reason: ForceReason = None


class LtiDeploymentIn(Strict):
    """A platform deployment the tenant's LTI launches come from (LTI 1.3: the platform's issuer
    and the deployment id it gave this tool)."""

    issuer: str = Field(
        min_length=1,
        max_length=500,
        # a host name (letters, digits, dots, hyphens), a port, a path without spaces or control
        # characters (spelled out: `\s` is not the same class in JSON Schema's regular
        # expressions and in the validator's)
        pattern=r"^https://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[^\x00-\x20\x7f-\x9f]*)?$",
        description="the platform's issuer (the launch's `iss` claim): an https URL",
        examples=["https://canvas.instructure.com"],
    )
    deployment_id: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="the deployment id (the launch's https://purl.imsglobal.org/spec/lti/claim/deployment_id claim)",
        examples=["12653:bb7a1c4f0e3d"],
    )
    label: str | None = Field(default=None, max_length=200, description="what it is, for people (a school, an LMS)")


class LtiDeploymentsIn(Strict):
    deployments: list[LtiDeploymentIn] = Field(
        max_length=1000,
        description="every deployment of the tenant (replaces the list; empty: no check)",
    )
