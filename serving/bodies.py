"""The OpenAPI schemas of the request bodies that the routes check in code: events (native,
xAPI or Caliper), xAPI statements, Caliper envelopes, catalog items and CASE packages.

Their rules do not fit a JSON schema (a statement's verb may contradict its result, a standard
must exist in the tenant's framework, a CASE package's associations must name its items), and
what the code reads is more lenient than a schema would be (an LRS has accepted what it forwards
and drops a batch that is refused), so the routes take the body as JSON and check it themselves,
with errors naming the field at fault. A client generated from the OpenAPI document still gets
typed bodies: these models describe them, and FastAPI publishes them without enforcing them
(:func:`documented`; :func:`add_components` puts the shared definitions in the document).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from engine.catalog import Modality
from serving.schemas import ID_PATTERN, IRI_PATTERN, ITEM_ID_PATTERN, MAX_ITEM_ID

__all__ = [
    "CALIPER_ENVELOPE",
    "CASE_PACKAGE",
    "EVENTS",
    "ITEMS",
    "MAX_ITEMS",
    "STATEMENT",
    "STATEMENTS",
    "add_components",
    "documented",
]

_REF = "#/components/schemas/{model}"


class _Open(BaseModel):
    """xAPI lets statements carry more than zpd reads (extensions, attachments, LRS fields)."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------------- native events
class NativeEventIn(BaseModel):
    """One answer in zpd's own form (``correct`` or ``score`` is required), or an activity done
    without an answer (``kind: exposure``: a video watched, a small-group lesson attended)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["correct"]},
                {"required": ["score"]},
                {"required": ["kind"], "properties": {"kind": {"const": "exposure"}}},
            ]
        }
    )

    id: str = Field(pattern=ID_PATTERN, description="unique per tenant; a resend with the same content is a duplicate")
    learner_id: str = Field(pattern=ID_PATTERN, description="a pseudonymous id (never an e-mail address)")
    item_id: str = Field(
        pattern=ITEM_ID_PATTERN, max_length=MAX_ITEM_ID, description="a catalog item's id, or an activity IRI"
    )
    correct: bool | Literal[0, 1] | None = Field(None, description="the answer was right")
    score: float | None = Field(None, ge=0, le=1, description="a partial score, when there is no right/wrong")
    kind: Literal["answer", "exposure"] = Field(
        "answer",
        description="exposure: the activity was done and sends no answer (no correct, no score); it is no "
        "evidence of what the learner knows, only their latest activity",
    )
    timestamp: str | float | None = Field(
        None, description="ISO-8601 time (UTC when it has no zone) or epoch seconds; absent: when it arrives"
    )


# ---------------------------------------------------------------------------- xAPI statements
class XapiAccount(_Open):
    homePage: str = Field(pattern=IRI_PATTERN)
    name: str = Field(
        pattern=r"\S", description="the platform's user id (an LMS's sourcedId is kept as the learner id)"
    )


_IDENTIFIERS = ("account", "mbox", "mbox_sha1sum", "openid")


class XapiAgent(_Open):
    """A learner: one of ``account``, ``mbox``, ``mbox_sha1sum``, ``openid`` names them."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": [k]} for k in _IDENTIFIERS]})

    objectType: Literal["Agent"] | None = None
    name: str | None = None
    mbox: str | None = Field(None, pattern=r"^mailto:\S+@\S+$", description="hashed on arrival, never stored")
    mbox_sha1sum: str | None = Field(None, pattern=r"^[0-9a-fA-F]{40}$")
    openid: str | None = Field(None, pattern=IRI_PATTERN)
    account: XapiAccount | None = None


class XapiActor(XapiAgent):
    """An Agent, or a Group: an anonymous group (``member`` only, Agents) is kept for each member,
    as an exposure."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": [k]} for k in (*_IDENTIFIERS, "member")]})

    objectType: Literal["Agent", "Group"] | None = None  # type: ignore[assignment]
    member: list[XapiAgent] | None = Field(None, min_length=1)


class XapiVerb(_Open):
    id: str = Field(pattern=IRI_PATTERN, description="a verb IRI; the ADL verbs are read by default (`[xapi] verbs`)")
    display: dict[str, str] | None = None


class XapiActivityDefinition(_Open):
    name: dict[str, str] | None = None
    description: dict[str, str] | None = None
    type: str | None = None
    extensions: dict[str, Any] | None = Field(
        None,
        description="`https://w3id.org/zpd-engine/xapi/extensions/standards`: the standard codes or CASE "
        "identifiers the activity practises",
    )


class XapiObject(_Open):
    """The activity answered (its IRI is the item id), or, for a `voided` statement, a
    ``StatementRef`` naming the statement it voids."""

    objectType: Literal["Activity", "StatementRef", "Agent", "Group", "SubStatement"] | None = None
    id: str | None = Field(
        None, pattern=ITEM_ID_PATTERN, max_length=MAX_ITEM_ID, description="the activity IRI, or a statement's id"
    )
    definition: XapiActivityDefinition | None = None


class XapiScore(_Open):
    scaled: float | None = Field(None, ge=-1, le=1)
    raw: float | None = None
    min: float | None = None
    max: float | None = None


class XapiResult(_Open):
    success: bool | None = None
    completion: bool | None = None
    score: XapiScore | None = None
    response: str | None = None
    duration: str | None = None


class XapiContextActivities(_Open):
    parent: list[XapiObject] | XapiObject | None = None
    grouping: list[XapiObject] | XapiObject | None = None
    category: list[XapiObject] | XapiObject | None = None
    other: list[XapiObject] | XapiObject | None = None


class XapiContext(_Open):
    registration: str | None = None
    contextActivities: XapiContextActivities | None = Field(
        None, description="a standard code or CASE identifier among these ids aligns an unknown activity"
    )


class XapiStatementIn(_Open):
    """An xAPI 1.0.3 or 2.0 statement. ``success``, else ``score.scaled``, else ``raw`` out of
    ``max`` is the outcome; what xAPI allows but zpd cannot use whole is kept and named in the
    answer's ``warnings``."""

    id: str | None = Field(
        None, pattern=ID_PATTERN, description="a UUID; one is assigned when it has none (statements resource)"
    )
    actor: XapiActor
    verb: XapiVerb
    object: XapiObject
    result: XapiResult | None = None
    context: XapiContext | None = None
    timestamp: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="ISO-8601; absent: when it arrives"
    )


# ---------------------------------------------------------------------------- Caliper
class CaliperEntity(_Open):
    """A Caliper entity (JSON-LD): a ``Person``, an ``AssessmentItem``, an ``Attempt``, a ``Score``...
    An entity may also be named by its IRI alone."""

    id: str | None = Field(None, description="its IRI (Caliper 1.0: `@id`)")
    type: str | None = Field(None, description="Person, AssessmentItem, Attempt, Score... (Caliper 1.0: `@type`)")


class CaliperEventIn(_Open):
    """A Caliper 1.0-1.2 event. ``GradeEvent``/``Graded`` is an answer (``generated``: a Score
    with ``scoreGiven`` and ``maxScore``; the learner is the ``object`` Attempt's ``assignee``, the
    activity its ``assignable``); ``AssessmentItemEvent``/``Completed`` is stored, not evidence
    (``[caliper] actions`` adds more). The activity's ``learningObjectives`` (codes or CASE
    identifiers) align an activity the catalog does not know."""

    id: str | None = Field(None, description="`urn:uuid:...`; without one, the event's content names it")
    type: str = Field(description="GradeEvent, AssessmentItemEvent... (Caliper 1.0: `@type`, an IRI)")
    actor: CaliperEntity | str
    action: str = Field(description="Graded, Completed... (Caliper 1.0: an IRI)")
    object: CaliperEntity | str
    eventTime: str = Field(json_schema_extra={"format": "date-time"}, description="ISO-8601")
    generated: CaliperEntity | str | None = None


class CaliperEnvelopeIn(_Open):
    """What a Caliper sensor sends: events, and entities it describes (skipped)."""

    sensor: str = Field(min_length=1, description="the sensor's IRI")
    sendTime: str = Field(json_schema_extra={"format": "date-time"})
    dataVersion: str = Field(
        pattern=r"^https?://purl\.imsglobal\.org/ctx/caliper/", description="http://purl.imsglobal.org/ctx/caliper/v1p1"
    )
    data: list[CaliperEventIn | CaliperEntity] = Field(min_length=1)


# ---------------------------------------------------------------------------- catalog items
_Words = Annotated[list[str] | str, Field(description="a list, or one ';'-separated string")]


class ItemIn(BaseModel):
    """One item of the tenant's catalog (``PUT /v1/items``)."""

    id: str = Field(pattern=ITEM_ID_PATTERN, max_length=MAX_ITEM_ID, description="a plain id or an activity IRI")
    title: str = Field(min_length=1)
    standards: _Words = Field(description="the standard codes it practises (any common spelling)")
    modality: Modality
    duration_minutes: float | str = Field(description="minutes, > 0")
    difficulty: float | str | None = Field(None, description="0 (easiest) to 1 (hardest)")
    url: str | None = None
    tags: _Words | None = None
    language: str | None = Field(None, description="default: en")
    source: str | None = None
    mastery_check: bool | str | None = Field(None, description="it can confirm mastery (a quiz, a mini-assessment)")
    withdrawn: bool | str | None = Field(None, description="no longer offered; answers on it still count")


#: the items one ``PUT /v1/items`` takes
MAX_ITEMS = 5000


class ItemsIn(BaseModel):
    items: list[ItemIn] = Field(max_length=MAX_ITEMS)


# ---------------------------------------------------------------------------- CASE packages
class CaseNodeUri(_Open):
    identifier: str
    uri: str | None = None
    title: str | None = None


class CaseItem(_Open):
    identifier: str
    humanCodingScheme: str | None = Field(None, description="the standard's code")
    fullStatement: str | None = None
    CFItemType: str | None = None
    educationLevel: list[str] | None = None


class CaseAssociation(_Open):
    identifier: str | None = None
    associationType: str = Field(description="`precedes` (or the configured types) links prerequisites")
    originNodeURI: CaseNodeUri
    destinationNodeURI: CaseNodeUri


class CasePackageIn(_Open):
    """A CASE 1.0 package (``GET /ims/case/v1p0/CFPackages/{id}`` of a CASE server)."""

    CFDocument: dict[str, Any]
    CFItems: list[CaseItem]
    CFAssociations: list[CaseAssociation] = []


class WrappedCasePackageIn(_Open):
    """A CASE package as some servers send it, inside ``CFPackage``."""

    CFPackage: CasePackageIn


_Event = NativeEventIn | XapiStatementIn | CaliperEventIn
EVENTS = TypeAdapter(_Event | Annotated[list[_Event], Field(min_length=1)])
STATEMENT = TypeAdapter(XapiStatementIn)
STATEMENTS = TypeAdapter(XapiStatementIn | Annotated[list[XapiStatementIn], Field(min_length=1)])
ITEMS = TypeAdapter(Annotated[list[ItemIn], Field(max_length=MAX_ITEMS)] | ItemsIn | ItemIn)
CASE_PACKAGE = TypeAdapter(CasePackageIn | WrappedCasePackageIn)
CALIPER_ENVELOPE = TypeAdapter(CaliperEnvelopeIn)

#: every documented body, for :func:`add_components`
_BODIES = (EVENTS, STATEMENT, STATEMENTS, ITEMS, CASE_PACKAGE, CALIPER_ENVELOPE)


def _schema(body: TypeAdapter[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``body``'s JSON schema, its models (a model body itself too) referred to as components,
    and the definitions of those components."""
    schema = body.json_schema(ref_template=_REF)
    definitions = schema.pop("$defs", {})
    if "properties" in schema:  # one model: a component of its own, like the others
        definitions[schema["title"]] = schema
        schema = {"$ref": _REF.format(model=schema["title"])}
    return schema, definitions


def documented(body: TypeAdapter[Any], description: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose JSON body ``body`` describes (not enforced)."""
    return {"requestBody": {"description": description, "content": {"application/json": {"schema": _schema(body)[0]}}}}


def add_components(openapi: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the definitions the documented bodies refer to."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for body in _BODIES:
        for name, definition in _schema(body)[1].items():
            if schemas.get(name, definition) != definition:
                raise RuntimeError(f"two OpenAPI schemas are named {name!r}")
            schemas[name] = definition
    return openapi
