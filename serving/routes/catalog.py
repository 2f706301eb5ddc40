from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Path, Query

from engine.case import CaseOptions, parse_case
from engine.catalog import CatalogError, Modality, parse_item
from engine.graph import GraphError
from serving.bodies import CASE_PACKAGE, ITEMS, MAX_ITEMS, documented
from serving.content import tenant_catalog
from serving.deps import ERRORS, AdminDep, ReadDep, ServiceDep, admin_work, links_to
from serving.jsonbody import api_router
from serving.responses import ImportOut, ItemsOut, ItemsPutOut, ItemWithdrawnOut, StandardOut, UnalignedOut
from serving.schemas import ITEM_ID_PATTERN, EventError, check_item_id
from serving.service import ApiError
from serving.stores.base import VersionConflict
from serving.views import iso, item_json

router = api_router(prefix="/v1", tags=["standards and items"], responses=ERRORS)


@router.get(
    "/standards/{code}",
    summary="One standard with its prerequisites, dependents, parts and items",
    response_model=StandardOut,
)
def get_standard(code: str, principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    graph = service.graph(principal.tenant)
    canonical = service.resolve_standard(principal.tenant, code, "code")
    std = graph.standards[canonical]
    return {
        "code": std.code,
        "description": std.description,
        "grade": std.grade,
        "domain": {"code": std.domain_code, "name": std.domain_name},
        "cluster": {"code": std.cluster_code, "name": std.cluster_name},
        "parent": std.parent,
        "parts": list(graph.parts.get(canonical, ())),
        "aliases": list(std.aliases),
        "prerequisites": graph.sort(graph.prereq.predecessors(canonical)),
        "dependents": graph.sort(graph.prereq.successors(canonical)),
        "related": graph.sort(next(iter(p - {canonical})) for p in graph.related if canonical in p),
        "items": [i.id for i in service.catalog(principal.tenant).for_standard(canonical) if not i.withdrawn],
    }


@router.get(
    "/items",
    summary="The catalog the tenant sees (the shared one and its own items)",
    response_model=ItemsOut,
    responses=links_to(
        {"item_id": "$response.body#/items/0/id", "code": "$response.body#/items/0/standards/0"},
        {"withdraw": ("delete", "/v1/items/{item_id}"), "standard": ("get", "/v1/standards/{code}")},
    ),
)
def get_items(
    principal: ReadDep,
    service: ServiceDep,
    standard: str | None = None,
    modality: Modality | None = None,
    own: Annotated[bool, Query(description="only the tenant's own items")] = False,
    withdrawn: Annotated[
        bool, Query(description="the items withdrawn from the tenant's offer (`DELETE /v1/items/{id}`), not the others")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    content = service.content.content(principal.tenant)
    items = [i for i in content.catalog if (not own or i.id in content.own) and i.withdrawn == withdrawn]
    if standard is not None:
        canonical = service.resolve_standard(principal.tenant, standard, "standard")
        units = set(content.graph.leaves(canonical)) | {canonical}
        items = [i for i in items if units & set(content.index.item_units.get(i.id, ())) or canonical in i.standards]
    if modality is not None:
        wanted = Modality(modality)
        items = [i for i in items if i.modality is wanted]
    return {"total": len(items), "items": [item_json(i) for i in items[offset : offset + limit]]}


@router.put(
    "/items",
    summary="Add or update the tenant's own items (admin)",
    response_model=ItemsPutOut,
    openapi_extra=documented(ITEMS, f'a list of up to {MAX_ITEMS:,} items, {{"items": [...]}}, or one item'),
)
@admin_work
def put_items(principal: AdminDep, service: ServiceDep, body: Any = Body(...)) -> dict[str, Any]:
    """Items belong to the tenant that sends them: visible and recommendable to it only, over the
    shared catalog (an item with the id of a shared one replaces it for this tenant). Answers on
    an activity that was unaligned are folded into their learners' state once it is aligned. An
    item moved to other standards (``realigned``) counts on its new ones for every answer, the
    earlier too: each learner who answered it is folded again from their log when a request
    next reads them (an event, a recommendation, a teacher's view); the others keep their state."""
    records = (
        body if isinstance(body, list) else body.get("items") if isinstance(body, dict) and "items" in body else [body]
    )
    if not isinstance(records, list) or len(records) > MAX_ITEMS:
        raise ApiError(
            413 if isinstance(records, list) else 422, "bad_items", f"send up to {MAX_ITEMS} items as a list", "body"
        )
    graph = service.graph(principal.tenant)
    for i, record in enumerate(records):  # checked here for precise errors; stored below
        if not isinstance(record, dict):
            raise ApiError(422, "invalid_item", "expected an item object", f"items[{i}]")
        try:
            check_item_id(record.get("id"), f"items[{i}].id")
            parse_item(record, f"items[{i}]", graph)
        except EventError as exc:
            raise ApiError(422, "invalid_item", str(exc), exc.field) from None
        except CatalogError as exc:
            message = str(exc)
            field = message.split("field '")[1].split("'")[0] if "field '" in message else None
            raise ApiError(
                404 if "unknown standard" in message else 422,
                "invalid_item",
                message,
                f"items[{i}].{field}" if field else f"items[{i}]",
            ) from None
    try:
        created, updated, realigned = service.content.upsert(principal.tenant, records)  # the other workers follow
    except VersionConflict as exc:
        raise ApiError(409, "busy", str(exc), "body") from None
    rebuilt = service.realign(principal.tenant, [r["id"] for r in records])
    after = service.catalog(principal.tenant)
    notes = (
        [
            f"{len(realigned)} item(s) now on other standards ({', '.join(realigned[:5])}"
            f"{', ...' if len(realigned) > 5 else ''}): the learners who answered them are folded again with the new"
            " standards when a request next reads them"
        ]
        if realigned
        else []
    )
    index = service.content.content(principal.tenant).index
    taught_only = index.graph.sort(
        {u for r in records for u in index.item_units.get(r["id"], ()) if u in index.taught_only}
    )
    if taught_only:
        notes.append(
            f"{len(taught_only)} standard(s) of these items have only lessons, readings or videos "
            f"({', '.join(taught_only[:5])}{', ...' if len(taught_only) > 5 else ''}): nothing on them sends an "
            "answer, so no learner can show them learned; plans pass over them (what builds on them needs their "
            "prerequisites instead) until practice or a check on them is added"
        )
    return {
        "created": created,
        "updated": updated,
        "items": len(after),
        "learners_rebuilt": rebuilt,
        "realigned": realigned,
        "notes": notes,
    }


@router.delete(
    "/items/{item_id:path}",
    summary="Withdraw an item from the tenant's offer (admin)",
    response_model=ItemWithdrawnOut,
)
def withdraw_item(
    principal: AdminDep,
    service: ServiceDep,
    item_id: Annotated[
        str,
        Path(
            description="The item's id (an activity IRI may be sent as it is; one longer than 2,048 characters "
            "does not fit in a URL: withdraw it with PUT /v1/items and `withdrawn: true`)",
            # documented, and checked below (an error that says what an item id is)
            json_schema_extra={"pattern": ITEM_ID_PATTERN, "maxLength": 2048},
        ),
    ],
) -> dict[str, Any]:
    """The item is no longer recommended to the tenant's learners, nor put in their playlists,
    rotations or diagnostics, and no longer listed (``GET /v1/items?withdrawn=true`` lists it);
    answers given on it, earlier or still arriving, count on its standards as before. A shared
    item is withdrawn for this tenant only. Sending the item again (``PUT /v1/items``) offers it
    again."""
    try:
        check_item_id(item_id, "item_id")
    except EventError as exc:
        raise ApiError(422, "invalid_item", str(exc), "item_id") from None
    try:
        item = service.content.withdraw(principal.tenant, item_id)
    except VersionConflict as exc:
        raise ApiError(409, "busy", str(exc), "item_id") from None
    if item is None:
        catalog = service.catalog(principal.tenant)
        withdrawn = item_id in catalog and catalog[item_id].withdrawn
        raise ApiError(
            404,
            "unknown_item",
            f"item {item_id!r} is withdrawn already" if withdrawn else f"unknown item {item_id!r}",
            "item_id",
        )
    offered = sum(1 for i in service.catalog(principal.tenant) if not i.withdrawn)
    return {"withdrawn": item.id, "standards": list(item.standards), "items": offered}


@router.get(
    "/events/unaligned",
    summary="Activities answered that the tenant's catalog does not align yet",
    response_model=UnalignedOut,
)
def get_unaligned(principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    """Answers on these activities are kept; once an admin adds the activity as an item
    (``PUT /v1/items``), they count in their learners' state."""
    known = service.unaligned(principal.tenant)
    return {
        "total": len(known),
        "activities": [
            {"item_id": a.item_id, "events": a.events, "learners": a.learners, "first_seen": iso(a.first_seen)}
            for a in known
        ],
    }


@router.post(
    "/standards/import",
    summary="Use a CASE package as the tenant's standards framework (admin)",
    response_model=ImportOut,
    openapi_extra=documented(CASE_PACKAGE, "a CASE 1.0 package (CFDocument, CFItems, CFAssociations)"),
)
@admin_work
def import_standards(
    principal: AdminDep,
    service: ServiceDep,
    body: Any = Body(...),
    allow_empty: Annotated[
        bool,
        Query(
            description="import a framework no catalog item is aligned to yet (its own codes): its learners get "
            "no recommendations until items aligned to it are added with PUT /v1/items"
        ),
    ] = False,
) -> dict[str, Any]:
    """The package becomes this tenant's framework (other tenants keep theirs, the deployment's
    by default): its learners' states are rebuilt for it on their next request, the shared items
    aligned to it stay, and so do the tenant's own. A framework with codes of its own keeps no
    item: ``allow_empty=true`` imports it anyway, and its items follow with ``PUT /v1/items``
    (which checks their standards against the framework the tenant has then)."""
    engine = service.engine
    cfg = engine.config.graph
    try:
        graph = parse_case(
            body, "CASE package", CaseOptions(cfg.prerequisite_association_types, cfg.grouping_item_types)
        )
    except GraphError as exc:
        raise ApiError(422, "invalid_case_package", str(exc), "body") from None
    before = len(service.catalog(principal.tenant))
    kept, _, _ = tenant_catalog(engine.catalog, graph, service.content.records(principal.tenant), False)
    if not len(kept) and not allow_empty:
        raise ApiError(
            422,
            "no_items_left",
            "no catalog item is aligned to the imported framework, so its learners would get no recommendations: "
            "import it with allow_empty=true, then add items aligned to it (PUT /v1/items)",
            "body",
        )
    service.content.import_framework(principal.tenant, body)
    content = service.content.content(principal.tenant)
    empty = (
        []
        if len(content.catalog)
        else ["no catalog item is aligned to this framework yet: add some with PUT /v1/items"]
    )
    return {
        "title": graph.title,
        "standards": len(graph.internal_codes),
        "prerequisite_edges": graph.prereq.number_of_edges(),
        "items_kept": len(content.catalog),
        "items_dropped": max(0, before - len(content.catalog)),
        "model_version": content.version,
        "warnings": [*graph.warnings, *empty],
    }
