"""IMS Caliper events as learning evidence: what a Caliper sensor sends (an envelope of events,
Caliper 1.0 to 1.2) read into the same :class:`engine.xapi.Statement` an xAPI statement becomes.

Envelope
    ``{"sensor", "sendTime", "dataVersion", "data": [...]}``: ``data`` holds events and entities
    (a sensor "describes" entities too); :func:`read_envelope` checks it and returns ``data``.
Which events are evidence
    An event is read by its ``type`` and ``action`` (Caliper 1.0's IRIs by their last part):
    :data:`DEFAULT_ACTIONS` says what each is (configurable with ``[caliper] actions``):
    ``scored`` (``GradeEvent``/``Graded``: the score decides) or ``exposure``
    (``AssessmentItemEvent``/``Completed``: the learner answered; Caliper carries the grade in a
    ``GradeEvent``, so the answer itself is stored, not evidence). Every other event (navigation,
    sessions, media...) and every entity is *skipped*: :func:`skipped` says why, and the receiver
    reports it; nothing else is stored.
Learner
    A ``GradeEvent``'s learner is its ``Attempt``'s ``assignee`` (Caliper 1.0: the Attempt's
    ``actor``); the event's own ``actor`` is whoever graded, an autograder or a teacher. Any
    other event's learner is its ``actor``. A learner is a ``Person``:
    by default its ``id``, kept when it is a plain id (``urn:instructure:canvas:user:...``) and
    hashed, salted with the tenant, otherwise (an IRI, anything with an e-mail address in it).
    ``[caliper] learner_identifier`` may name a type of Caliper 1.2's ``otherIdentifiers``
    instead (``OneRosterSourcedId``, ``SisSourcedId``, ``LtiUserId``...): a sourced id becomes
    the id a OneRoster import gives the same user, so the events reach the roster's students.
    ``LtiUserId`` is also read from the LTI launch an event's ``federatedSession`` carries (1.3's
    ``sub``, 1.1's ``user_id``), when the session is the learner's own.
    An event about no person (an entity referenced by id only, a ``SoftwareApplication``) is
    about no learner (``reason`` ``no_learner``).
Activity
    A ``GradeEvent``'s ``Attempt``'s ``assignable`` (an ``AssessmentItem``, or an ``Assessment``
    graded whole), any other event's ``object``: its ``id`` is the item id. Its
    ``learningObjectives`` (ids and names) name the standards: codes or CASE identifiers, which
    the caller resolves against its graph (``extra["objectives"]``: one per objective, its id, or
    its name when it has no id; what training reads as the answer's skills; ``extra["item_field"]``:
    the field that holds the item id).
Outcome
    A ``Score``'s ``scoreGiven`` / ``maxScore`` (Caliper 1.1 and 1.2), or a ``Result``'s
    ``resultScore`` / ``maxResultScore`` (1.1); numbers sent as text are read as numbers. Extra
    credit (above the maximum) counts as 1 and a negative score as 0, each with a note. A
    ``scored`` event without a usable score (none, no maximum, not a number) is an exposure,
    with a note saying why: it is stored, never refused.
Platform deployment
    An event whose ``federatedSession`` carries an LTI 1.3 launch (Caliper 1.2's
    ``messageParameters``: its ``iss`` and deployment id claim) names the platform deployment it
    came from (:func:`launch_deployment`; LTI: a tenant is an issuer and a deployment id). Given
    ``deployments``, a launch from another one is refused (``reason`` ``other_deployment``); an
    event without such a launch names none and is read.
Ids and times
    The event's ``id`` (``urn:uuid:...``) is its id when it is a plain id, else a hash of it;
    an event without one (Caliper 1.0 had none) gets a hash of its content, so a resend is a
    duplicate. ``eventTime`` is required (ISO-8601; ``+0000`` offsets, as moment.js writes
    them, are read).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from engine.xapi import SetAside, Statement, StatementError, account_id, parse_time

__all__ = [
    "DEFAULT_ACTIONS",
    "ENTITY",
    "EVIDENCE",
    "SOURCED_IDS",
    "event_kind",
    "is_caliper_event",
    "launch_deployment",
    "parse_event",
    "read_envelope",
    "skipped",
]

EVIDENCE = ("scored", "exposure")

DEFAULT_ACTIONS: dict[str, str] = {
    "GradeEvent/Graded": "scored",
    "OutcomeEvent/Graded": "scored",  # Caliper 1.0's name for a grade
    "AssessmentItemEvent/Completed": "exposure",
}

#: the LTI 1.3 claim naming the platform deployment a launch came from
LTI_DEPLOYMENT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"

#: ``otherIdentifiers`` types that are a student information system's ids: read as a roster's
#: ``sourcedId`` (the id a OneRoster import gives the same user)
SOURCED_IDS = ("OneRosterSourcedId", "SisSourcedId", "LisSourcedId")

_CONTEXT = re.compile(r"^https?://purl\.imsglobal\.org/ctx/caliper/", re.IGNORECASE)
_PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127}$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def _term(value: Any) -> str | None:
    """A type or action: Caliper 1.1's term, or the last part of Caliper 1.0's IRI."""
    if not isinstance(value, str) or not value.strip():
        return None
    return re.split(r"[/#]", value.strip())[-1] or None


def _field(entity: Mapping[str, Any], name: str) -> Any:
    """``name`` or its JSON-LD keyword form (Caliper 1.0 wrote ``@id`` and ``@type``)."""
    value = entity.get(name)
    return entity.get("@" + name) if value is None and name in ("id", "type") else value


def is_caliper_event(raw: Any) -> bool:
    """A Caliper event (an actor's action on an object at a time), not an xAPI statement."""
    return isinstance(raw, dict) and "action" in raw and "eventTime" in raw and "verb" not in raw


def read_envelope(body: Any, where: str = "body") -> list[Any]:
    """The ``data`` of a Caliper envelope, after checking the envelope."""
    if not isinstance(body, dict):
        raise StatementError(
            where, "expected a Caliper envelope: an object with sensor, sendTime, dataVersion and data", "bad_envelope"
        )
    for name in ("sensor", "sendTime", "dataVersion"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise StatementError(f"{where}.{name}", f"is required (a string), got {value!r}", "bad_envelope")
    if not _CONTEXT.match(body["dataVersion"].strip()):
        raise StatementError(
            f"{where}.dataVersion",
            f"must be a Caliper context (http://purl.imsglobal.org/ctx/caliper/v1p1, ...), got {body['dataVersion']!r}",
            "bad_envelope",
        )
    parse_time(body["sendTime"], f"{where}.sendTime")
    data = body.get("data")
    if not isinstance(data, list):
        raise StatementError(f"{where}.data", "must be a list of events and entities", "bad_envelope")
    return data


def event_kind(event: Any, actions: Mapping[str, str] | None = None) -> str | None:
    """``scored`` or ``exposure`` for an event that is evidence, None for one to skip.
    ``actions``: what each ``Type/Action`` is (the caller merges a configuration over
    :data:`DEFAULT_ACTIONS` once); None: the defaults."""
    if not is_caliper_event(event):
        return None
    key = f"{_term(_field(event, 'type'))}/{_term(event.get('action'))}"
    return (DEFAULT_ACTIONS if actions is None else actions).get(key)


#: how :func:`skipped` begins the reason of an entry that is no event
ENTITY = "an entity"


def skipped(item: Any, actions: Mapping[str, str] | None = None) -> str | None:
    """Why an envelope's ``data`` entry is skipped (not stored), or None when it is read."""
    if not isinstance(item, dict):
        return f"{ENTITY} named by its id alone, not an event" if isinstance(item, str) else "not an object"
    if not is_caliper_event(item):
        return f"{ENTITY} ({_term(_field(item, 'type')) or 'no type'}), not an event"
    if event_kind(item, actions) is None:
        kind = f"{_term(_field(item, 'type')) or 'no type'}/{_term(item.get('action')) or 'no action'}"
        return f"{kind} is not learning evidence (see [caliper] actions)"
    return None


def _id_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        found = _field(value, "id")
        return found.strip() if isinstance(found, str) and found.strip() else None
    return None


def _learner(entity: Any, tenant: str, identifier: str, where: str, event: Mapping[str, Any]) -> str:
    """The learner id of a ``Person`` (see the module docstring)."""
    if isinstance(entity, dict):
        kind = _term(_field(entity, "type"))
        if kind is not None and kind not in ("Person", "Agent"):
            raise StatementError(where, f"is a {kind}, not a Person: the event is about no learner", "no_learner")
    if identifier == "id":
        person = _id_of(entity)
        if person is None:
            raise StatementError(where, "names no Person: expected an object with an id", "no_learner")
        return account_id(person, tenant, "caliper")
    scope = f"{tenant}\x1fusers" if identifier in SOURCED_IDS else f"{tenant}\x1fcaliper:{identifier}"
    others = entity.get("otherIdentifiers") if isinstance(entity, dict) else None
    for k, other in enumerate(others if isinstance(others, list) else ()):
        if isinstance(other, dict) and _term(other.get("identifierType")) == identifier:
            value = other.get("identifier")
            if not isinstance(value, str) or not value.strip():
                raise StatementError(f"{where}.otherIdentifiers[{k}].identifier", "is empty", "bad_actor")
            return account_id(value, scope)
    if identifier == "LtiUserId":
        launched = _lti_user(event, _id_of(entity))
        if launched is not None:
            return account_id(launched, scope)
    lti = " or the LTI launch of the event's federatedSession, whose user it is," if identifier == "LtiUserId" else ""
    raise StatementError(
        f"{where}.otherIdentifiers" if isinstance(entity, dict) else where,
        f"has no {identifier} identifier{lti} ([caliper] learner_identifier says the learner is named by it)",
        "no_learner",
    )


def _lti_user(event: Mapping[str, Any], person: str | None) -> str | None:
    """The LTI user id (LTI 1.3's ``sub``, 1.1's ``user_id``) of the launch an event's
    ``federatedSession`` carries (Caliper 1.2's ``messageParameters``, 1.1's
    ``launchParameters``), when that session is ``person``'s: a teacher's session on a grade
    names the teacher, not the learner."""
    session = event.get("federatedSession")
    if person is None or not isinstance(session, dict) or _id_of(session.get("user")) != person:
        return None
    claims = session.get("messageParameters") or session.get("launchParameters")
    if not isinstance(claims, dict):
        return None
    return _text(claims.get("sub")) or _text(claims.get("user_id"))


def launch_deployment(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(issuer, deployment id) of the LTI 1.3 launch an event's ``federatedSession`` carries
    (Caliper 1.2's ``messageParameters``), or None when it carries none (no session, an LTI 1.1
    launch: 1.1 has no deployment id)."""
    session = event.get("federatedSession")
    claims = session.get("messageParameters") if isinstance(session, dict) else None
    if not isinstance(claims, dict):
        return None
    issuer, deployment = _text(claims.get("iss")), _text(claims.get(LTI_DEPLOYMENT_CLAIM))
    return (issuer, deployment) if issuer is not None and deployment is not None else None


def _number(value: Any) -> float | None:
    """A finite number, or a number sent as text; anything else (NaN, infinities) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.match(value)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _outcome(generated: Any, where: str) -> tuple[float | None, list[SetAside]]:
    """The outcome in [0, 1] of a grade's ``generated`` Score or Result, or None with why."""

    def none(problem: str) -> tuple[None, list[SetAside]]:
        return None, [SetAside("no_score", where, f"{problem}: kept as an exposure (not evidence)")]

    if generated is None:
        return none("is missing (a grade carries its Score here)")
    if not isinstance(generated, dict):
        return none("names its Score by id only; expected the Score with scoreGiven and maxScore")
    if "scoreGiven" in generated or _term(_field(generated, "type")) == "Score":
        names = ("scoreGiven", "maxScore")
    elif "resultScore" in generated or _term(_field(generated, "type")) == "Result":
        names = ("resultScore", "maxResultScore")
    else:
        return none("is no Score (expected scoreGiven and maxScore)")
    given, most = (_number(generated.get(n)) for n in names)
    for name, value in zip(names, (given, most)):
        if value is None:
            return none(f"{name} is not a number (got {generated.get(name)!r})")
    assert given is not None and most is not None
    if most <= 0:
        return none(f"{names[1]} is {most:g}: points without a maximum say nothing about success")
    ratio = given / most
    if ratio > 1.0:
        return 1.0, [
            SetAside(
                "clamped",
                f"{where}.{names[0]}",
                f"{given:g} is above {names[1]} {most:g} (extra credit): read as full marks",
            )
        ]
    if ratio < 0.0:
        return 0.0, [SetAside("clamped", f"{where}.{names[0]}", f"{given:g} is below 0: read as no marks")]
    return ratio, []


def _objectives(activity: Any) -> list[tuple[str | None, str | None]]:
    """``(id, name)`` of each of an activity's ``learningObjectives``."""
    if not isinstance(activity, dict):
        return []
    found: list[tuple[str | None, str | None]] = []
    objectives = activity.get("learningObjectives")
    for objective in objectives if isinstance(objectives, list) else [objectives] if objectives else []:
        if isinstance(objective, str) and objective.strip():
            found.append((objective.strip(), None))
        elif isinstance(objective, dict):
            found.append((_text(_field(objective, "id")), _text(objective.get("name"))))
    return found


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _event_id(event: Mapping[str, Any], tenant: str) -> str:
    given = _field(event, "id")
    if isinstance(given, str) and _PLAIN_ID.match(given.strip()):
        return given.strip()
    text = (
        given.strip()
        if isinstance(given, str) and given.strip()
        else json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    )
    return "c-" + hashlib.sha256(f"{tenant}\x1fcaliper\x1f{text}".encode()).hexdigest()[:32]


def parse_event(
    event: Any,
    *,
    tenant: str = "",
    actions: Mapping[str, str] | None = None,
    learner_identifier: str = "id",
    where: str = "event",
    deployments: Collection[tuple[str, str]] | None = None,
) -> Statement:
    """What a Caliper event says about learning (see the module docstring). Raises
    :class:`StatementError` naming the field for an event that cannot be stored (``reason``
    ``no_learner`` for one about no learner, ``other_deployment`` for a launch from a platform
    deployment not among ``deployments``, when given); a grade without a usable score is an
    exposure, the reason in ``set_aside``."""
    if not is_caliper_event(event):
        raise StatementError(where, "expected a Caliper event (type, actor, action, object, eventTime)", "bad_event")
    kind = event_kind(event, actions)
    if kind is None:
        raise StatementError(where, skipped(event, actions) or "is not learning evidence", "not_evidence")
    launched = launch_deployment(event) if deployments is not None else None
    if deployments is not None and launched is not None and launched not in deployments:
        raise StatementError(
            f"{where}.federatedSession.messageParameters",
            f"is a launch from deployment {launched[1][:100]!r} of the platform {launched[0][:200]!r}, none of this "
            "tenant's LTI deployments",
            "other_deployment",
        )
    type_ = _term(_field(event, "type"))
    graded = type_ in ("GradeEvent", "OutcomeEvent")
    obj = event.get("object")
    if obj is None:
        raise StatementError(f"{where}.object", "is required", "bad_event")
    if graded:
        if not isinstance(obj, dict):
            raise StatementError(
                f"{where}.object",
                "names its Attempt by id only; expected the Attempt with assignee and assignable",
                "no_learner",
            )
        # Caliper 1.0 named an Attempt's learner its ``actor``
        role = "assignee" if "assignee" in obj or "actor" not in obj else "actor"
        learner = _learner(obj.get(role), tenant, learner_identifier, f"{where}.object.{role}", event)
        activity, activity_at = obj.get("assignable"), f"{where}.object.assignable"
    else:
        learner = _learner(event.get("actor"), tenant, learner_identifier, f"{where}.actor", event)
        activity, activity_at = obj, f"{where}.object"
    item = _id_of(activity)
    if item is None:
        raise StatementError(activity_at, "names no activity: expected an object with an id, or its IRI", "bad_event")
    timestamp, naive = parse_time(event.get("eventTime"), f"{where}.eventTime")
    outcome: float | None = None
    notes: list[SetAside] = []
    if kind == "scored":
        outcome, notes = _outcome(event.get("generated"), f"{where}.generated")
    objectives = _objectives(activity)
    return Statement(
        id=_event_id(event, tenant),
        learner=learner,
        item=item,
        kind="answer" if outcome is not None else "exposure",
        verb=f"{type_}/{_term(event.get('action'))}",
        outcome=outcome,
        timestamp=timestamp,
        standards=tuple(dict.fromkeys(v for pair in objectives for v in pair if v is not None)),
        clamped=any(n.reason == "clamped" for n in notes),
        naive_time=naive,
        set_aside=tuple(notes),
        extra={
            "objectives": [ident or name for ident, name in objectives],
            "item_field": f"{activity_at}.id" if isinstance(activity, dict) else activity_at,
        },
    )
