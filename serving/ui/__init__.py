"""The web interface for teachers and students, served by the API's own app under ``/ui/``.

Server-rendered pages (Jinja2 templates and one stylesheet shipped in the package; no CDN, no
script needed to read): sign-in, the teacher's classes, a class dashboard, today's rotation
(printable, and as CSV) with overrides, a learner's GPS, the student link that shows one
learner's GPS and nothing else, and an administrator's roster imports. Every page reads through the learner service, as the API does.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import Counter
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BeforeValidator, Field, ValidationError

from engine.planner.context import Goal
from engine.planner.playlist import MIN_BLOCK_MINUTES, session_blocks
from engine.roster import Roster, RosterError
from serving.auth import Principal
from serving.imports import changes_in_words, doing_now
from serving.jsonbody import api_router
from serving.routes.classes import page_after, sees_class, visible_classes
from serving.schemas import GoalIn
from serving.service import ApiError, LearnerService
from serving.ui.pages import (
    STATUS_LABEL,
    Thresholds,
    class_dashboard,
    day,
    learner_gps,
    rotation_csv,
    rotation_grid,
    teacher_led,
)
from serving.ui.session import COOKIE, LOGIN_COOKIE, SESSION_S, Session, UiAuth

__all__ = ["install_ui"]

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(status_label=STATUS_LABEL, day=day)
router = api_router(prefix="/ui", include_in_schema=False)


class _SignIn(Exception):
    """Not signed in: go to the sign-in page."""


#: a form's field left empty is sent as ``name=``: not set, rather than a number it is not
BLANK_IS_NONE = BeforeValidator(lambda value: None if value == "" else value)
#: seats per station in each block (empty: no limit)
Seats = Annotated[Annotated[int, Field(ge=0, le=200)] | None, BLANK_IS_NONE]
#: a percentage of the dashboard's settings (empty: the default)
Percent = Annotated[Annotated[float, Field(ge=0, le=100)] | None, BLANK_IS_NONE]


def install_ui(app: FastAPI) -> None:
    """Mount the pages and their stylesheet (the app's lifespan sets ``app.state.ui``)."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.exception_handler(_SignIn)
    async def sign_in(request: Request, exc: _SignIn) -> Response:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/ui/login?next={target}", status_code=303)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/ui/", status_code=303)


def _service(request: Request) -> LearnerService:
    return request.app.state.service


def _session(request: Request) -> Session:
    found = request.app.state.ui.session(request.cookies.get(COOKIE))
    if found is None:
        raise _SignIn()
    return found


#: every page's headers: not cached (a page shows students), never framed, nothing from elsewhere
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'",
}


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def too_large_page(limit: int) -> tuple[bytes, dict[str, str]]:
    """The page a form's upload over ``limit`` bytes gets, with its headers (the body limit
    answers before any route, so there is no session to show)."""
    message = (
        f"The file is larger than {limit / 1e6:,.0f} MB, the most this server takes in one upload. "
        "A bundle this large is imported with the command line, on a machine with the server's configuration:"
    )
    html = templates.get_template("error.html").render(
        heading="File too large",
        message=message,
        command="zpd roster import FILE --tenant TENANT",
        session=None,
        back="/ui/roster",
    )
    return html.encode(), {**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"}


def _error(request: Request, status: int, message: str, session: Session | None = None) -> HTMLResponse:
    return _page(request, "error.html", status, message=message, session=session)


def _api_error(request: Request, exc: ApiError, session: Session) -> HTMLResponse:
    """The error page for what the service refused, with its status (a 5xx one as a 422)."""
    return _error(request, exc.status if exc.status < 500 else 422, exc.message, session)


def invalid_page(request: Request, problems: list[tuple[str, str]]) -> HTMLResponse:
    """A page's request the server cannot take (a setting out of range in its query string): the
    error page, naming each setting, for the person at the browser."""
    session = request.app.state.ui.session(request.cookies.get(COOKIE))
    named = "; ".join(f"{field.removeprefix('query.')}: {message}" for field, message in problems)
    return _error(request, 422, f"Some settings are not valid: {named}.", session)


def _may_see_learner(service: LearnerService, principal: Principal, learner_id: str) -> bool:
    allowed = service.scope_of(principal)
    if allowed is not None:
        return learner_id in allowed
    return (
        learner_id in service.roster(principal.tenant).users
        or service.store.get(principal.tenant, learner_id) is not None
    )


# ---------------------------------------------------------------------------- sign-in
@router.get("/")
def home(request: Request) -> Response:
    _session(request)
    return RedirectResponse("/ui/classes", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "/ui/classes") -> Response:
    token = _login_token()
    response = _page(request, "login.html", next=_safe_next(next), csrf=token, error=None)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/ui/login")
    return response


def _login_token() -> str:
    return secrets.token_urlsafe(24)


def _safe_next(target: str) -> str:
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/classes"


@router.post("/login")
def login(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/ui/classes",
) -> Response:
    ui: UiAuth = request.app.state.ui
    if not ui.same(csrf, request.cookies.get(LOGIN_COOKIE, "")):
        return _error(request, 403, "The sign-in form expired; open the sign-in page again.")
    principal = request.app.state.keys.verify(key.strip())
    if principal is None or not principal.scopes & {"teacher", "admin"}:
        token = _login_token()
        response = _page(
            request,
            "login.html",
            401,
            next=_safe_next(next),
            csrf=token,
            error="That key is unknown, revoked, or not a teacher's or an admin's key.",
        )
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/ui/login")
        return response
    signed_in = RedirectResponse(_safe_next(next), status_code=303)
    signed_in.set_cookie(
        COOKIE,
        ui.start(principal),
        max_age=SESSION_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    signed_in.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return signed_in


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    session = _session(request)
    if not request.app.state.ui.same(csrf, session.csrf):
        return _error(request, 403, "The form expired; reload the page.", session)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# ---------------------------------------------------------------------------- classes
#: classes on one page of the class list (a district has thousands)
CLASSES_PAGE = 100


@router.get("/classes")
def classes(
    request: Request,
    school: Annotated[str, Query(max_length=256)] = "",
    after: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    """The classes the key sees, a page at a time in id order, of one school when several."""
    session = _session(request)
    service = _service(request)
    roster, ids = visible_classes(service, session.principal)
    school_of = {c: roster.classes[c].get("school") or "" for c in ids}
    counted = Counter(school_of.values())
    names = {org: roster.orgs.get(org, {}).get("name") or org or "(no school)" for org in counted}
    schools = [  # by name, as a person looks for one (School 9 before School 10)
        {"id": org, "name": names[org], "classes": counted[org]}
        for org in sorted(counted, key=lambda org: (_natural(names[org]), org))
    ]
    chosen = [c for c in ids if school_of[c] == school] if school else ids
    page, following = page_after(chosen, after, CLASSES_PAGE)
    listed = [
        {
            "id": c,
            "title": roster.classes[c]["title"],
            "school": roster.orgs.get(school_of[c], {}).get("name"),
            "students": len(roster.members(c, "student")),
            "teachers": ", ".join(roster.name_of(t) for t in roster.members(c, "teacher")),
        }
        for c in page
    ]
    return _page(
        request,
        "classes.html",
        session=session,
        classes=listed,
        schools=schools if len(schools) > 1 else [],
        school=school,
        total=len(chosen),
        first=chosen.index(page[0]) + 1 if page else 0,
        next_after=following,
    )


def _natural(text: str) -> list[Any]:
    """A sort key that orders the numbers in a name by value (School 9 before School 10)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in re.split(r"(\d+)", text)]


def _class_or_404(request: Request, session: Session, class_id: str) -> Roster | HTMLResponse:
    roster = _service(request).roster(session.principal.tenant)
    if not sees_class(roster, session.principal, class_id):
        return _error(request, 404, f"No class {class_id!r} among your classes.", session)
    return roster


def _class_form(request: Request, session: Session, class_id: str, csrf: str) -> Roster | HTMLResponse:
    """The roster of a class a form was sent about: the form's token checked, the class hers."""
    if not request.app.state.ui.same(csrf, session.csrf):
        return _error(request, 403, "The form expired; reload the page and try again.", session)
    return _class_or_404(request, session, class_id)


@router.get("/classes/{class_id}")
def dashboard(
    request: Request,
    class_id: str,
    struggling_below: Annotated[Percent, Query()] = None,
    excelling_above: Annotated[Percent, Query()] = None,
    min_answers: Annotated[Annotated[int, Field(ge=0, le=1000)] | None, BLANK_IS_NONE, Query()] = None,
    inactive_days: Annotated[Annotated[float, Field(ge=0, le=365)] | None, BLANK_IS_NONE, Query()] = None,
) -> Response:
    """A setting left empty in the form is the default."""
    session = _session(request)
    roster = _class_or_404(request, session, class_id)
    if isinstance(roster, HTMLResponse):
        return roster
    d = Thresholds()
    t = Thresholds(
        d.struggling_below if struggling_below is None else struggling_below / 100,
        d.excelling_above if excelling_above is None else excelling_above / 100,
        d.min_answers if min_answers is None else min_answers,
        d.inactive_days if inactive_days is None else inactive_days,
    )
    service = _service(request)
    data = class_dashboard(service, session.principal.tenant, roster, class_id, t, service.clock())
    return _page(
        request,
        "dashboard.html",
        session=session,
        class_id=class_id,
        title=roster.classes[class_id]["title"],
        t=t,
        **data,
    )


def _rotation(request: Request, session: Session, roster: Roster, class_id: str, params: dict[str, Any]):
    service = _service(request)
    capacities = {m: int(params[m]) for m in STATIONS if params.get(m) is not None}
    rotation, versions = service.rotation(
        session.principal.tenant,
        roster.members(class_id, "student"),
        session_minutes=params["session_minutes"],
        block_minutes=params["block_minutes"],
        capacities=capacities,
        group_capacity=params["group_capacity"],
        unseen=True,
        entry_diagnostic=not params["skip_diagnostic"],
        blocks_done=params["blocks_done"],
    )
    return rotation, versions


def rotation_params(
    session_minutes: Annotated[float, Query(ge=MIN_BLOCK_MINUTES, le=480)] = 60,
    block_minutes: Annotated[float, Query(ge=MIN_BLOCK_MINUTES, le=240)] = 20,
    group_capacity: Annotated[int, Query(ge=1, le=30)] = 6,
    online_practice: Annotated[Seats, Query()] = None,
    video: Annotated[Seats, Query()] = None,
    reading: Annotated[Seats, Query()] = None,
    assessment: Annotated[Seats, Query()] = None,
    skip_diagnostic: Annotated[bool, Query()] = False,
    blocks_done: Annotated[int, Query(ge=0, le=95)] = 0,
) -> dict[str, Any]:
    """The teacher's rotation settings (the page's form and the CSV link share them).
    ``blocks_done``: the first blocks of the session are over, the rest is planned again (a
    number past the session's last block plans its last one)."""
    block_minutes = min(block_minutes, session_minutes)
    return {
        "session_minutes": session_minutes,
        "block_minutes": block_minutes,
        "blocks_done": min(blocks_done, session_blocks(session_minutes, block_minutes) - 1),
        "group_capacity": group_capacity,
        "online_practice": online_practice,
        "video": video,
        "reading": reading,
        "assessment": assessment,
        "skip_diagnostic": skip_diagnostic,
    }


#: the stations whose seats the rotation form sets
STATIONS = ("online_practice", "video", "reading", "assessment")


RotationParams = Annotated[dict[str, Any], Depends(rotation_params)]


@router.get("/classes/{class_id}/rotation")
def rotation_page(request: Request, class_id: str, params: RotationParams) -> Response:
    session = _session(request)
    roster = _class_or_404(request, session, class_id)
    if isinstance(roster, HTMLResponse):
        return roster
    if not roster.members(class_id, "student"):
        return _error(request, 422, "This class has no students yet.", session)
    rotation, versions = _rotation(request, session, roster, class_id, params)
    grid = rotation_grid(rotation, roster)
    query = request.url.query
    return _page(
        request,
        "rotation.html",
        session=session,
        class_id=class_id,
        title=roster.classes[class_id]["title"],
        grid=grid,
        params=params,
        versions=versions,
        students=[(lid, roster.name_of(lid)) for lid in roster.members(class_id, "student")],
        csv_url=f"/ui/classes/{quote(class_id)}/rotation.csv" + (f"?{query}" if query else ""),
        today=day(_service(request).clock()),
        rest_url=_rest_url(request, class_id, params, grid),
        led=teacher_led(grid, params["blocks_done"]),
    )


def _rest_url(request: Request, class_id: str, params: dict[str, Any], grid: dict[str, Any]) -> str | None:
    """The page planned again once the next block is over (None after the last one)."""
    done = params["blocks_done"] + 1
    if done >= len(grid["blocks"]):
        return None
    query = urlencode(
        [*((k, v) for k, v in request.query_params.multi_items() if k != "blocks_done"), ("blocks_done", done)]
    )
    return f"/ui/classes/{quote(class_id)}/rotation?{query}"


#: the most lessons a "block is over" form records (students x teacher-led activities of a block)
MAX_HELD = 400


@router.post("/classes/{class_id}/rotation/block-over")
def block_over(
    request: Request,
    class_id: str,
    block: Annotated[int, Form(ge=0, le=95)],
    held: Annotated[list[str], Form(max_length=MAX_HELD)] = [],  # noqa: B006 (FastAPI reads the default)
    csrf: Annotated[str, Form(max_length=100)] = "",
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A block of today's rotation is over: the lessons the teacher led in it (``held``: the
    students the teacher left ticked, ``"LEARNER ITEM"``) are recorded for each student as an
    activity done without an answer (an exposure: see ``LearnerCore.observe``), and the rest of
    the session is planned again (``back``: the rotation page with the blocks over). A lesson
    sends no answer, so without this the plan of the rest would not know it was held and would
    gather the same group again. Sent twice (a reload), the same lessons are duplicates."""
    session = _session(request)
    roster = _class_form(request, session, class_id, csrf)
    if isinstance(roster, HTMLResponse):
        return roster
    service = _service(request)
    tenant = session.principal.tenant
    students = set(roster.members(class_id, "student"))
    today = day(service.clock()) or ""
    events = []
    for value in held:
        learner_id, _, item_id = value.partition(" ")
        if learner_id not in students:
            return _error(request, 404, f"No student {learner_id!r} in this class.", session)
        try:
            item = service.item(tenant, item_id, "held")
        except ApiError as exc:
            return _api_error(request, exc, session)
        if item.modality.answers:
            return _error(request, 422, f"{item.title!r} is not a lesson the teacher leads.", session)
        key = "\x1f".join((class_id, today, str(block), item_id, learner_id))
        events.append(
            {
                "id": "held-" + hashlib.sha256(key.encode()).hexdigest()[:40],
                "learner_id": learner_id,
                "item_id": item_id,
                "kind": "exposure",
            }
        )
    if events:
        try:
            result = service.ingest(tenant, events, frozenset(students))
        except ApiError as exc:
            return _api_error(request, exc, session)
        if result["retry"]:  # a student's record was busy: nothing of theirs was written
            return _error(request, 503, "The server was busy with these students; send the form again.", session)
    target = back if back.startswith(f"/ui/classes/{quote(class_id)}/rotation?") else None
    return RedirectResponse(
        target or f"/ui/classes/{quote(class_id)}/rotation?blocks_done={block + 1}", status_code=303
    )


@router.get("/classes/{class_id}/rotation.csv")
def rotation_export(request: Request, class_id: str, params: RotationParams) -> Response:
    session = _session(request)
    roster = _class_or_404(request, session, class_id)
    if isinstance(roster, HTMLResponse):
        return roster
    rotation, _ = _rotation(request, session, roster, class_id, params)
    name = f"rotation-{class_id}-{day(_service(request).clock())}.csv"
    return Response(
        rotation_csv(rotation, roster),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.post("/classes/{class_id}/overrides")
def class_override(
    request: Request,
    class_id: str,
    learner_id: Annotated[str, Form(max_length=128)],
    action: Annotated[str, Form(max_length=20)],
    value: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """A teacher's change to today's plan becomes the learner's override: pin a standard (also
    how a student is moved to a small group's standard) or exclude an item."""
    session = _session(request)
    roster = _class_form(request, session, class_id, csrf)
    if isinstance(roster, HTMLResponse):
        return roster
    if learner_id not in roster.members(class_id, "student"):
        return _error(request, 404, f"No student {learner_id!r} in this class.", session)
    service = _service(request)
    tenant = session.principal.tenant
    try:
        if action in ("pin", "move"):
            code = service.resolve_standard(tenant, value, "value")
            service.add_overrides(tenant, learner_id, pin_standards=[code])
        elif action == "exclude":
            service.item(tenant, value, "value")
            service.add_overrides(tenant, learner_id, exclude_items=[value])
        else:
            return _error(request, 422, f"Unknown change {action!r}; expected pin, move or exclude.", session)
    except ApiError as exc:
        return _api_error(request, exc, session)
    target = back if back.startswith(f"/ui/classes/{class_id}/rotation") else f"/ui/classes/{class_id}/rotation"
    return RedirectResponse(target, status_code=303)


# ---------------------------------------------------------------------------- goals
def _goal_of_form(service: LearnerService, tenant: str, standards: str, due: str) -> Goal:
    """The goal a teacher's form states: standards separated by commas or spaces (any spelling
    the API takes), and an optional date (YYYY-MM-DD), read as the API reads a goal."""
    codes = [code for code in re.split(r"[\s,;]+", standards) if code]
    try:
        body = GoalIn.model_validate({"standards": codes, "date": due.strip() or None})
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = "date" if problem["loc"][:1] == ("date",) else "standards"
        what = "Name at least one standard, for example 4.NF.A.1" if not codes else problem["msg"]
        raise ApiError(422, "invalid_goal", f"The goal's {field}: {what}.", field) from None
    goal = service.goal(tenant, body)
    assert goal is not None  # a body makes a goal
    return goal


def goal_form(
    standards: Annotated[str, Form(max_length=2000)] = "",
    date: Annotated[str, Form(max_length=40)] = "",
    action: Annotated[str, Form(max_length=10)] = "set",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> dict[str, str]:
    """A goal form's fields (the class's and a student's pages share them)."""
    return {"standards": standards, "date": date, "action": action, "csrf": csrf}


GoalForm = Annotated[dict[str, str], Depends(goal_form)]


def _set_goal(request: Request, session: Session, learner_ids: list[str], form: dict[str, str], back: str) -> Response:
    """The goal the form states (none for ``action=clear``) for each of these learners, then
    back to the page the form is on."""
    if form["action"] not in ("set", "clear"):
        return _error(request, 422, f"Unknown change {form['action']!r}; expected set or clear.", session)
    service = _service(request)
    tenant = session.principal.tenant
    try:
        goal = _goal_of_form(service, tenant, form["standards"], form["date"]) if form["action"] == "set" else None
    except ApiError as exc:
        return _api_error(request, exc, session)
    service.set_goals(tenant, learner_ids, goal)
    return RedirectResponse(back, status_code=303)


@router.post("/classes/{class_id}/goal")
def class_goal(request: Request, class_id: str, form: GoalForm) -> Response:
    """One goal for every student of the class (``PUT /v1/classes/{id}/goal``)."""
    session = _session(request)
    if not request.app.state.ui.same(form["csrf"], session.csrf):
        return _error(request, 403, "The form expired; reload the page and try again.", session)
    roster = _class_or_404(request, session, class_id)
    if isinstance(roster, HTMLResponse):
        return roster
    return _set_goal(request, session, roster.members(class_id, "student"), form, f"/ui/classes/{quote(class_id)}")


@router.post("/learners/{learner_id}/goal")
def learner_goal(request: Request, learner_id: str, form: GoalForm) -> Response:
    """A student's own goal (``PUT /v1/learners/{id}/goal``), or none (``action=clear``)."""
    session = _session(request)
    if not request.app.state.ui.same(form["csrf"], session.csrf):
        return _error(request, 403, "The form expired; reload the page and try again.", session)
    if not _may_see_learner(_service(request), session.principal, learner_id):
        return _error(request, 404, f"No learner {learner_id!r} among your students.", session)
    return _set_goal(request, session, [learner_id], form, f"/ui/learners/{quote(learner_id)}")


# ---------------------------------------------------------------------------- GPS
def _gps_page(request: Request, tenant: str, learner_id: str, session: Session | None, link: str | None = None):
    service = _service(request)
    roster = service.roster(tenant)
    data = learner_gps(service, tenant, roster, learner_id, service.clock())
    return _page(request, "gps.html", session=session, link=link, student_view=session is None, **data)


@router.get("/learners/{learner_id}")
def gps(request: Request, learner_id: str) -> Response:
    session = _session(request)
    if not _may_see_learner(_service(request), session.principal, learner_id):
        return _error(request, 404, f"No learner {learner_id!r} among your students.", session)
    return _gps_page(request, session.principal.tenant, learner_id, session)


@router.post("/learners/{learner_id}/link")
def student_link(request: Request, learner_id: str, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    session = _session(request)
    if not request.app.state.ui.same(csrf, session.csrf):
        return _error(request, 403, "The form expired; reload the page and try again.", session)
    if not _may_see_learner(_service(request), session.principal, learner_id):
        return _error(request, 404, f"No learner {learner_id!r} among your students.", session)
    token = request.app.state.ui.student_link(session.principal.tenant, learner_id)
    link = str(request.url_for("student_gps", token=token))
    return _gps_page(request, session.principal.tenant, learner_id, session, link=link)


@router.get("/s/{token}", name="student_gps")
def student_gps(request: Request, token: str) -> Response:
    found = request.app.state.ui.student(token)
    if found is None:
        return _error(request, 404, "This link is not valid or has expired; ask your teacher for a new one.")
    tenant, learner_id = found
    return _gps_page(request, tenant, learner_id, None)


# ---------------------------------------------------------------------------- the roster
def _import_row(job: dict[str, Any]) -> dict[str, Any]:
    progress = job.get("progress")
    doing = doing_now(progress) if progress else ""
    result = job.get("result") or {}
    counts = result.get("counts", {})
    return {
        "id": job["import_id"],
        "status": job["status"],
        "doing": doing,
        "submitted": job["submitted"],
        "finished": job.get("finished"),
        "size": f"{job['bytes'] / 1e6:.1f} MB" if job["bytes"] >= 1e6 else f"{max(1, round(job['bytes'] / 1e3))} kB",
        "holds": (
            f"{counts['students']:,} students, {counts['teachers']:,} teachers, {counts['classes']:,} classes, "
            f"{counts['enrollments']:,} enrollments in {counts['orgs']:,} orgs; "
            + (
                "1 student's grade set"
                if result["grades_set"] == 1
                else f"{result['grades_set']:,} students' grades set"
            )
        )
        if counts
        else "",
        "changes": changes_in_words(result.get("changes", {})) or ("no change" if result else ""),
        "notes": result.get("notes", []),
        "error": (job.get("error") or {}).get("message"),
    }


def _roster_page(request: Request, session: Session, status: int = 200, error: str | None = None) -> HTMLResponse:
    jobs = request.app.state.imports.listing(session.principal.tenant)
    return _page(
        request,
        "roster.html",
        status,
        session=session,
        imports=[_import_row(job) for job in jobs],
        refresh=any(job["status"] in ("queued", "running") for job in jobs),
        error=error,
        limit_mb=request.app.state.config.serving.max_roster_bytes // 2**20,
    )


def _admin_only(request: Request, session: Session) -> HTMLResponse | None:
    if "admin" in session.principal.scopes:
        return None
    return _error(request, 403, "Only an administrator's key imports the roster.", session)


@router.get("/roster")
def roster(request: Request) -> Response:
    """The tenant's roster imports, newest first, and a form to send one (an admin's)."""
    session = _session(request)
    return _admin_only(request, session) or _roster_page(request, session)


@router.post("/roster")
def roster_upload(
    request: Request, bundle: Annotated[UploadFile, File()], csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    """A OneRoster zip chosen in the browser: imported as ``POST /v1/rosters`` imports one."""
    session = _session(request)
    refused = _admin_only(request, session)
    if refused is not None:
        return refused
    if not request.app.state.ui.same(csrf, session.csrf):
        return _error(request, 403, "The form expired; reload the page.", session)
    data = bundle.file.read()
    if not data:
        return _roster_page(request, session, 422, "The file is empty: choose the zip of the roster's CSV files.")
    try:
        request.app.state.imports.submit(session.principal.tenant, data, bundle.filename or "the file")
    except RosterError as exc:
        return _roster_page(request, session, 422, str(exc))
    return RedirectResponse("/ui/roster", status_code=303)
