"""xAPI statements as learning evidence: the one parser the API and the training loader share.

A statement becomes a :class:`Statement`: who (a pseudonymous learner id), which activity (its IRI
is the item id), what kind of evidence (an *answer* with an outcome, an *exposure* with none, a
*void* of an earlier statement, or *ignored*), when, and the standards it names.

Actors
    ``account`` -> its ``name``, kept as is when it is a plain id (an LMS or platform id); an
    account name that looks like an e-mail address or is not a plain id is hashed. ``mbox``,
    ``mbox_sha1sum`` and ``openid`` are hashed. Hashes are salted with the tenant, so the same
    person has unrelated ids in two tenants, and an e-mail address never leaves this module:
    ``mbox`` and its ``mbox_sha1sum`` give the same id. An anonymous group (a ``Group`` that is
    only its ``member`` list) is no learner: an error, or, read leniently, a statement about each
    member, as an exposure.
Verbs
    :data:`DEFAULT_VERBS` says what each ADL verb is evidence of (configurable with ``[xapi]
    verbs`` in the config): ``success`` (passed, mastered), ``failure`` (failed), ``scored`` (the
    result decides: answered, attempted, completed...), ``exposure`` (launched, experienced,
    progressed...) or ``ignore`` (initialized, terminated...). An unknown verb is ``scored``
    when the result has an outcome and ``exposure`` otherwise. A ``scored`` statement without an
    outcome is an exposure: it is stored, never refused.
Outcomes
    ``result.success`` when present; else ``result.score.scaled`` (in [-1, 1], clamped to [0, 1]);
    else ``(raw - min) / (max - min)``, with min 0 when it is left out; a raw score without a max
    is no outcome (xAPI makes min and max optional). ``success``/``failure`` verbs give 1 or 0; a
    result that contradicts the verb (``failed`` with ``success: true``) is an error (read
    leniently, as the API reads what an LRS forwards, the statement is kept as not evidence), as
    is a score that breaks xAPI's rules (scaled outside [-1, 1], raw outside min and max, max not
    above min).
Standards
    The extension :data:`STANDARDS_EXTENSION` (a code or a list; in ``object.definition.extensions``
    or ``context.extensions``), and the ids of ``context.contextActivities`` entries: candidate
    standard codes or CASE identifiers, which the caller resolves against its graph.
Voiding
    ``verb.id`` :data:`VOIDED` with an ``object`` of type ``StatementRef`` voids that statement.
Objects
    A statement about an ``Activity`` (the default) is learning evidence. One about an
    ``Agent``, a ``Group``, a ``SubStatement`` or (not voiding) a ``StatementRef`` is valid xAPI
    (a mentor's note about a learner, a statement about another) but no learning: *ignored*,
    under the object's ``id``, or its ``objectType`` when it has none (an Agent is named by its
    ``mbox`` or ``account``, which is never kept as an item id).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard

__all__ = [
    "ADL",
    "DEFAULT_VERBS",
    "EVIDENCE",
    "LRS_FIELDS",
    "STANDARDS_EXTENSION",
    "VOIDED",
    "SetAside",
    "Statement",
    "StatementError",
    "account_id",
    "comparable",
    "learner_id",
    "parse_statement",
    "parse_time",
    "check_time",
]

ADL = "http://adlnet.gov/expapi/verbs/"
VOIDED = ADL + "voided"
#: extension key listing the standards (codes or CASE identifiers) an activity assesses
STANDARDS_EXTENSION = "https://w3id.org/zpd-engine/xapi/extensions/standards"
#: fields an LRS sets on storing (they may differ between two deliveries of one statement)
LRS_FIELDS = ("stored", "authority", "version")
EVIDENCE = ("success", "failure", "scored", "exposure", "ignore")

DEFAULT_VERBS: dict[str, str] = {
    **{ADL + v: "scored" for v in ("answered", "attempted", "completed", "responded", "scored")},
    **{ADL + v: "success" for v in ("passed", "mastered")},
    ADL + "failed": "failure",
    **{ADL + v: "exposure" for v in ("experienced", "launched", "progressed", "interacted", "imported")},
    **{
        ADL + v: "ignore"
        for v in (
            "initialized",
            "terminated",
            "suspended",
            "resumed",
            "exited",
            "registered",
            "logged-in",
            "logged-out",
            "commented",
            "asked",
            "shared",
            "preferred",
        )
    },
    "https://w3id.org/xapi/video/verbs/played": "exposure",
    "https://w3id.org/xapi/video/verbs/paused": "ignore",
    "https://w3id.org/xapi/video/verbs/seeked": "ignore",
}

_PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")  # no "@": an e-mail is never kept
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")


class StatementError(ValueError):
    """A statement that cannot be read; ``field`` is its JSON path, ``reason`` a short code."""

    def __init__(self, field: str | None, problem: str, reason: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field, self.problem, self.reason = field, problem, reason


class SetAside(NamedTuple):
    """What a lenient reading set aside: ``reason`` (``contradiction``, ``bad_standards``,
    ``anonymous_group``), the field and what was wrong."""

    reason: str
    field: str
    message: str


@dataclass(frozen=True)
class Statement:
    """What a statement says about learning.

    ``kind``: ``answer`` (``outcome`` in [0, 1]), ``exposure``, ``ignored`` or ``void`` (``voids``
    names the voided statement id). ``timestamp`` in epoch seconds, None when the statement has
    none (the receiver then uses its own time but must not let it change the content).
    """

    id: str | None
    learner: str
    item: str
    kind: str
    verb: str
    outcome: float | None = None
    timestamp: float | None = None
    standards: tuple[str, ...] = ()
    voids: str | None = None
    clamped: bool = False  # a negative scaled score became 0
    naive_time: bool = False  # the timestamp had no time zone (read as UTC)
    extra: dict[str, Any] = field(default_factory=dict)
    #: read leniently, what was set aside (see :func:`parse_statement`), in the order found
    set_aside: tuple[SetAside, ...] = ()
    #: read leniently, an anonymous group's members (``learner`` is the first): the statement is about each
    members: tuple[str, ...] = ()

    @property
    def problem(self) -> tuple[str, str] | None:
        """``(field, message)`` of the first thing set aside, or None."""
        return (self.set_aside[0].field, self.set_aside[0].message) if self.set_aside else None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _salted(tenant: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{tenant}\x1f{kind}\x1f{value}".encode()).hexdigest()[:32]


def account_id(name: str, tenant: str = "", home: str = "") -> str:
    """The learner id of an account name (an xAPI ``account.name``, a roster's ``sourcedId``): the
    name itself when it is a plain id, otherwise (an e-mail address, spaces...) a salted hash.

    >>> account_id("s-42"), account_id("ana@example.org", "t")[:2]
    ('s-42', 'a-')
    """
    name = name.strip()
    if _PLAIN_ID.match(name):
        return name
    return "a-" + _salted(tenant, "account", f"{home or ''}|{name}")


def learner_id(actor: Any, tenant: str = "", where: str = "actor") -> str:
    """The pseudonymous learner id of an xAPI actor (see the module docstring).

    >>> learner_id({"account": {"homePage": "https://lms.example", "name": "s-42"}})
    's-42'
    >>> learner_id({"mbox": "mailto:Ana@Example.org"}, "t") == learner_id(
    ...     {"mbox_sha1sum": hashlib.sha1(b"mailto:Ana@Example.org").hexdigest()}, "t")
    True
    """
    if not isinstance(actor, dict):
        raise StatementError(where, "must be an object (an Agent)", "bad_actor")
    if _anonymous_group(actor):
        raise StatementError(where, "is an anonymous group; a learner is an Agent", "bad_actor")
    account = actor.get("account")
    if account is not None:
        name = _get(account, "name")
        if not isinstance(name, str) or not name.strip():
            raise StatementError(f"{where}.account.name", "is missing; expected the learner's account id", "bad_actor")
        home = _get(account, "homePage")
        return account_id(name, tenant, home if isinstance(home, str) else "")
    mbox = actor.get("mbox")
    if mbox is not None:
        if not isinstance(mbox, str) or not mbox.strip().lower().startswith("mailto:") or "@" not in mbox:
            raise StatementError(f"{where}.mbox", "must be a mailto: IRI", "bad_actor")
        return "m-" + _salted(tenant, "mbox", hashlib.sha1(mbox.strip().encode()).hexdigest())
    sha = actor.get("mbox_sha1sum")
    if sha is not None:
        if not isinstance(sha, str) or not _SHA1.match(sha.strip()):
            raise StatementError(f"{where}.mbox_sha1sum", "must be 40 hexadecimal digits", "bad_actor")
        return "m-" + _salted(tenant, "mbox", sha.strip().lower())
    openid = actor.get("openid")
    if openid is not None:
        if not isinstance(openid, str) or not openid.strip():
            raise StatementError(f"{where}.openid", "must be a URI", "bad_actor")
        return "o-" + _salted(tenant, "openid", openid.strip())
    raise StatementError(where, "names no learner: expected account, mbox, mbox_sha1sum or openid", "bad_actor")


#: the times an event may carry (epoch seconds): from 1970 to 2100
TIME_RANGE = (0.0, 4_102_444_800.0)


def check_time(seconds: float, where: str, raw: Any) -> float:
    """``seconds`` if it is a finite time within :data:`TIME_RANGE`."""
    if not math.isfinite(seconds) or not TIME_RANGE[0] <= seconds <= TIME_RANGE[1]:
        shown = repr(raw) if isinstance(raw, str) else f"{seconds:.6g}"
        raise StatementError(where, f"must be a time between 1970 and 2100, got {shown[:60]}", "bad_timestamp")
    return seconds


#: ISO-8601 times a datetime cannot hold but xAPI (and an LRS) takes: the end of a day, a leap second
_END_OF_DAY = re.compile(r"([T ])24:00(?::00(?:[.,]0+)?)?(?=$|[Zz+-])")
_LEAP_SECOND = re.compile(r"([T ]\d\d:\d\d):60(?=$|[.,Zz+-])")


def parse_time(value: Any, where: str = "timestamp") -> tuple[float, bool]:
    """Epoch seconds of an ISO-8601 time, and whether it had no time zone (read as UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise StatementError(where, f"must be an ISO-8601 time, got {value!r}", "bad_timestamp")
    text, later = value.strip(), 0.0
    if _END_OF_DAY.search(text):  # 24:00, the end of the day: the next day's 00:00
        text, later = _END_OF_DAY.sub(r"\g<1>00:00:00", text), 86400.0
    elif _LEAP_SECOND.search(text):  # a leap second (23:59:60): the second after :59
        text, later = _LEAP_SECOND.sub(r"\g<1>:59", text), 1.0
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise StatementError(where, f"must be an ISO-8601 time, got {value!r}", "bad_timestamp") from None
    naive = parsed.tzinfo is None
    if naive:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        seconds = parsed.timestamp() + later
    except (OverflowError, ValueError, OSError):
        raise StatementError(where, f"must be a time between 1970 and 2100, got {value!r}", "bad_timestamp") from None
    return check_time(seconds, where, value), naive


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _score(result: Mapping[str, Any], where: str) -> tuple[float | None, bool]:
    score = result.get("score")
    if score is None:
        return None, False
    if not isinstance(score, dict):
        raise StatementError(f"{where}.score", "must be an object", "bad_result")
    scaled = score.get("scaled")
    if scaled is not None:
        if not _number(scaled) or not -1.0 <= scaled <= 1.0:
            raise StatementError(f"{where}.score.scaled", f"must be a number in [-1, 1], got {scaled!r}", "bad_result")
        return float(min(max(scaled, 0.0), 1.0)), scaled < 0
    raw, low, high = score.get("raw"), score.get("min"), score.get("max")
    for name, value in (("raw", raw), ("min", low), ("max", high)):
        if value is not None and not _number(value):
            raise StatementError(f"{where}.score.{name}", f"must be a number, got {value!r}", "bad_result")
    if low is not None and high is not None and high <= low:
        raise StatementError(f"{where}.score.max", f"must be greater than min {low}, got {high}", "bad_result")
    if raw is None:
        return None, False
    if (low is not None and raw < low) or (high is not None and raw > high):
        bounds = " and ".join(f"{n} {v}" for n, v in (("min", low), ("max", high)) if v is not None)
        raise StatementError(f"{where}.score.raw", f"must be within {bounds}, got {raw}", "bad_result")
    # points out of a maximum: from min, or from 0 when min is left out (xAPI makes both optional);
    # points without a maximum say nothing about success: no outcome
    low = 0.0 if low is None else low
    if high is None or raw < low or high <= low:
        return None, False
    return float((raw - low) / (high - low)), False


def _standards(st: Mapping[str, Any], extension: str, context_activities: bool) -> tuple[str, ...]:
    found: list[str] = []
    for value in (
        _get(st, "object", "definition", "extensions", extension),
        _get(st, "context", "extensions", extension),
    ):
        if value is None:
            continue
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise StatementError(
                f"extensions[{extension}]", f"must be a standard code or a list of them, got {value!r}", "bad_standards"
            )
        found.extend(v.strip() for v in values)
    if context_activities:
        groups = _get(st, "context", "contextActivities")
        if isinstance(groups, dict):
            for key in ("parent", "grouping", "category", "other"):
                entries = groups.get(key)
                entries = [entries] if isinstance(entries, dict) else entries
                for entry in entries if isinstance(entries, list) else ():
                    if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"].strip():
                        found.append(entry["id"].strip())
    return tuple(dict.fromkeys(found))


def parse_statement(
    st: Any,
    *,
    tenant: str = "",
    verbs: Mapping[str, str] | None = None,
    standards_extension: str = STANDARDS_EXTENSION,
    context_activities: bool = True,
    where: str = "",
    lenient: bool = False,
) -> Statement:
    """Read one statement (see the module docstring); ``where`` prefixes the fields of errors.

    ``lenient``: what xAPI allows but this reader cannot use is set aside instead of raising, and
    named in ``set_aside``: a result that contradicts the verb makes the statement ``ignored`` (not
    evidence either way), a standards extension that is not codes is left out (the activity's
    alignment then comes from the catalog or the context), and an anonymous group's statement is
    about each of its ``members``, as an exposure (they saw the activity; a group's answer is not
    one learner's). Whoever receives statements an LRS forwards needs this: the LRS has accepted
    them, and it drops a batch that is refused."""
    at = (where + ".") if where else ""
    actor = st.get("actor") if isinstance(st, dict) else None
    if not (lenient and isinstance(actor, dict) and _anonymous_group(actor)):
        return _read(st, tenant, verbs, standards_extension, context_activities, where, lenient, None)
    found = actor.get("member")
    if not isinstance(found, list):
        raise StatementError(f"{at}actor.member", "an anonymous group lists its members (Agents)", "bad_actor")
    if not found:  # valid for an LRS (Ralph takes it), but about no one
        raise StatementError(
            f"{at}actor.member", "an anonymous group without members is about no learner", "no_learner"
        )
    members = tuple(dict.fromkeys(learner_id(m, tenant, f"{at}actor.member[{i}]") for i, m in enumerate(found)))
    parsed = _read(st, tenant, verbs, standards_extension, context_activities, where, lenient, members[0])
    if parsed.kind == "void":  # who voids does not matter: the target's learner is
        return parsed
    kind = "exposure" if parsed.kind == "answer" else parsed.kind
    note = SetAside(
        "anonymous_group",
        f"{at}actor",
        f"an anonymous group of {len(members)}: kept for each member as seen, not as an answer",
    )
    return replace(parsed, kind=kind, outcome=None, members=members, set_aside=(*parsed.set_aside, note))


def _anonymous_group(actor: Any) -> bool:
    return (
        isinstance(actor, dict)
        and actor.get("objectType") == "Group"
        and "member" in actor
        and not any(k in actor for k in ("account", "mbox", "mbox_sha1sum", "openid"))
    )


#: objects a statement may be about that are no activity (xAPI allows them; they are kept, ignored)
_NOT_ACTIVITIES = ("Agent", "Group", "SubStatement", "StatementRef")


def _read(
    st: Any,
    tenant: str,
    verbs: Mapping[str, str] | None,
    standards_extension: str,
    context_activities: bool,
    where: str,
    lenient: bool,
    learner: str | None,
) -> Statement:
    """:func:`parse_statement` for one learner (``learner``: given, or the actor's)."""
    at = (where + ".") if where else ""
    if not isinstance(st, dict):
        raise StatementError(where or None, "must be a JSON object (a statement)", "not_a_statement")
    sid = st.get("id")
    if sid is not None and (not isinstance(sid, str) or not sid.strip()):
        raise StatementError(f"{at}id", f"must be a string (a UUID), got {sid!r}", "bad_id")
    verb = _get(st, "verb", "id")
    if not isinstance(verb, str) or not verb.strip():
        raise StatementError(f"{at}verb.id", "is missing; expected a verb IRI", "bad_verb")
    verb = verb.strip()
    learner = learner if learner is not None else learner_id(st.get("actor"), tenant, f"{at}actor")
    obj = st.get("object")
    if not isinstance(obj, dict):
        raise StatementError(f"{at}object", "must be an object", "bad_object")
    target = obj.get("id")
    if isinstance(target, str) and target.strip():
        target = target.strip()
    elif obj.get("objectType") in _NOT_ACTIVITIES and verb != VOIDED:
        target = obj["objectType"]  # a person or a statement has no activity id: kept (ignored) under its kind
    else:
        raise StatementError(f"{at}object.id", "is missing; expected the activity IRI", "bad_object")
    stamp, naive = (None, False)
    if st.get("timestamp") is not None:
        stamp, naive = parse_time(st["timestamp"], f"{at}timestamp")
    common: dict[str, Any] = {"id": sid, "learner": learner, "verb": verb, "timestamp": stamp, "naive_time": naive}
    if verb == VOIDED:
        if obj.get("objectType") != "StatementRef":
            raise StatementError(
                f"{at}object.objectType", "a voiding statement must point at a StatementRef", "bad_object"
            )
        return Statement(item=target, kind="void", voids=target, **common)
    if obj.get("objectType") not in (None, "Activity"):  # about a person or a statement: not learning
        return Statement(item=target, kind="ignored", **common)
    evidence = (verbs if verbs is not None else DEFAULT_VERBS).get(verb)
    set_aside: tuple[SetAside, ...] = ()
    try:
        standards = _standards(st, standards_extension, context_activities)
    except StatementError as exc:
        if not lenient:
            raise
        set_aside = (SetAside("bad_standards", f"{at}{exc.field}", f"{exc.problem}; left out"),)
        standards = _standards(st, "", context_activities)
    common["set_aside"] = set_aside
    result = st.get("result")
    if result is not None and not isinstance(result, dict):
        raise StatementError(f"{at}result", "must be an object", "bad_result")
    result = result or {}
    success = result.get("success")
    if success is not None and not isinstance(success, bool):
        raise StatementError(f"{at}result.success", f"must be true or false, got {success!r}", "bad_result")
    score, clamped = _score(result, f"{at}result")
    if evidence is None:
        evidence = "scored" if (success is not None or score is not None) else "exposure"
    if evidence == "ignore":
        return Statement(item=target, kind="ignored", standards=standards, **common)
    if evidence == "exposure":
        return Statement(item=target, kind="exposure", standards=standards, **common)
    if evidence in ("success", "failure"):
        wanted = evidence == "success"
        if success is not None and success != wanted:
            text = (
                f"is {str(success).lower()} but the verb {verb} says the learner {'succeeded' if wanted else 'failed'}"
            )
            if not lenient:
                raise StatementError(f"{at}result.success", text, "contradiction")
            common["set_aside"] = (
                *set_aside,
                SetAside("contradiction", f"{at}result.success", f"{text}; kept, not evidence"),
            )
            return Statement(item=target, kind="ignored", standards=standards, **common)
        return Statement(item=target, kind="answer", outcome=1.0 if wanted else 0.0, standards=standards, **common)
    if success is not None:
        outcome: float | None = 1.0 if success else 0.0
    else:
        outcome = score
    if outcome is None:  # e.g. "completed" without a result: seen, not answered
        return Statement(item=target, kind="exposure", standards=standards, **common)
    return Statement(item=target, kind="answer", outcome=outcome, standards=standards, clamped=clamped, **common)


def comparable(st: Mapping[str, Any]) -> str:
    """A statement's content for duplicate detection: the LRS's own fields left out."""
    return json.dumps({k: v for k, v in st.items() if k not in LRS_FIELDS}, sort_keys=True, separators=(",", ":"))
