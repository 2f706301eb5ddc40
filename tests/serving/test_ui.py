"""The web interface's sign-in, in process: cookie flags, CSRF, forged and revoked sessions,
student links, and pages that load nothing from outside the server."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import pytest

SCHOOL = Path(__file__).resolve().parent.parent / "data" / "oneroster_school"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field"
    return found.group(1)


@pytest.fixture()
def ui(api):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(SCHOOL.glob("*.csv")):
            archive.write(path, path.name)
    response = api.client.post(
        "/v1/rosters", content=buffer.getvalue(), headers={**api.h(), "content-type": "application/zip"}
    )
    assert response.status_code == 200
    return api


def sign_in(api, key: str):
    page = api.client.get("/ui/login")
    return api.client.post(
        "/ui/login", data={"key": key, "csrf": csrf_of(page.text), "next": "/ui/classes"}, follow_redirects=False
    )


def test_the_session_cookie_is_signed_httponly_and_samesite(ui) -> None:
    response = sign_in(ui, ui.keys["a_teacher"])
    assert response.status_code == 303 and response.headers["location"] == "/ui/classes"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("zpd_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
    assert ui.keys["a_teacher"].split("_", 2)[2] not in cookie  # the key's secret is never in the cookie
    assert ui.client.get("/ui/classes").status_code == 200


def test_sign_in_needs_its_form_token_and_a_teacher_key(ui) -> None:
    ui.client.get("/ui/login")
    forged = ui.client.post("/ui/login", data={"key": ui.keys["a_teacher"], "csrf": "guess"}, follow_redirects=False)
    assert forged.status_code == 403
    assert sign_in(ui, ui.keys["a_read"]).status_code == 401  # a read-only key is not a teacher's
    assert sign_in(ui, "zpd_0000000000000000_nope").status_code == 401
    assert sign_in(ui, ui.keys["a_all"]).status_code == 303


def test_forms_need_the_session_token(ui) -> None:
    sign_in(ui, ui.keys["a_teacher"])
    page = ui.client.get("/ui/learners/stu-1000")
    assert page.status_code == 200
    bad = ui.client.post("/ui/learners/stu-1000/link", data={"csrf": "not-the-token"})
    assert bad.status_code == 403
    good = ui.client.post("/ui/learners/stu-1000/link", data={"csrf": csrf_of(page.text)})
    assert good.status_code == 200 and "/ui/s/" in good.text


def test_a_forged_or_revoked_session_signs_out(ui) -> None:
    sign_in(ui, ui.keys["a_teacher"])
    session = ui.client.cookies.get("zpd_session")
    # a character of the signature that every bit of counts (the last one carries padding bits:
    # "xx" in place of the last two left the signature as it was once in a thousand runs)
    forged = session[:-5] + ("A" if session[-5] != "A" else "B") + session[-4:]
    ui.client.cookies.set("zpd_session", forged, path="/ui")
    assert ui.client.get("/ui/classes", follow_redirects=False).status_code == 303
    ui.client.cookies.clear()
    sign_in(ui, ui.keys["a_teacher"])
    key_id = ui.keys["a_teacher"].split("_")[1]
    ui.store.revoke_key(key_id)
    ui.client.app.state.keys.forget(key_id)  # the key record cache lives seconds; do not wait for it
    response = ui.client.get("/ui/classes", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login")


def test_a_student_link_opens_one_learner_and_cannot_be_altered(ui) -> None:
    sign_in(ui, ui.keys["a_teacher"])
    page = ui.client.get("/ui/learners/stu-1000")
    link = re.search(
        r'readonly value="([^"]+)"',
        ui.client.post("/ui/learners/stu-1000/link", data={"csrf": csrf_of(page.text)}).text,
    ).group(1)
    ui.client.cookies.clear()
    path = link.replace("http://testserver", "")
    assert "Ana Silva" in ui.client.get(path).text
    token = path.rsplit("/", 1)[1]
    payload, _, signature = token.partition(".")
    import base64
    import json

    other = base64.urlsafe_b64encode(json.dumps({"t": "tenant-a", "l": "stu-1001"}).encode()).decode().rstrip("=")
    assert ui.client.get(f"/ui/s/{other}.{signature}").status_code == 404
    assert ui.client.get("/ui/learners/stu-1000", follow_redirects=False).status_code == 303


def test_pages_load_nothing_from_outside(ui) -> None:
    sign_in(ui, ui.keys["a_teacher"])
    for path in (
        "/ui/login",
        "/ui/classes",
        "/ui/classes/class-4a",
        "/ui/classes/class-4a/rotation",
        "/ui/learners/stu-1000",
    ):
        html = ui.client.get(path).text
        assert not re.search(r'(src|href)="(https?:)?//', html), path
    assert ui.client.get("/ui/static/ui.css").status_code == 200
    assert ui.client.get("/ui/static/favicon.svg").status_code == 200  # no request for /favicon.ico, a 404
    assert ui.client.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_the_rotation_page_refuses_a_block_of_no_time(ui) -> None:
    """The page's settings are a query string anyone can edit: a block of almost no time is
    refused, naming the setting (it planned 10**101 blocks, holding a worker for good)."""
    sign_in(ui, ui.keys["a_teacher"])
    for query in ("block_minutes=1e-300", "block_minutes=4", "session_minutes=3"):
        r = ui.client.get(f"/ui/classes/class-4a/rotation?{query}")
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), (query, r.status_code)
        assert f"{query.split('=')[0]}: Input should be greater than or equal to 5" in r.text, r.text
    assert ui.client.get("/ui/classes/class-4a/rotation?block_minutes=5&session_minutes=30").status_code == 200


def test_the_rotation_form_with_its_seat_fields_left_empty_plans(ui) -> None:
    """The settings form as a browser sends it: the seats per station left empty mean no limit
    (they were a 422 in JSON, so the form worked only with every field filled in)."""
    sign_in(ui, ui.keys["a_teacher"])
    query = "session_minutes=60&block_minutes=15&group_capacity=6&online_practice=&video=&reading="
    r = ui.client.get(f"/ui/classes/class-4a/rotation?{query}")
    assert r.status_code == 200, r.text[:300]
    assert 'name="block_minutes" min="5" max="240" value="15"' in r.text
    seats = ui.client.get("/ui/classes/class-4a/rotation?online_practice=3&video=").status_code
    assert seats == 200
    too_many = ui.client.get("/ui/classes/class-4a/rotation?online_practice=300")
    assert too_many.status_code == 422 and "online_practice: Input should be less than or equal to 200" in too_many.text


def test_a_new_class_s_rotation_starts_with_the_entry_diagnostic(ui) -> None:
    """Students exported without a grade and with no answer yet start with the entry diagnostic,
    as many at a time as the assessment station seats, and the page says the rest of their day
    is a guess until it is done. A teacher may leave it out; a graded class has none."""
    import csv

    from .test_rosters import ZIP, with_new_class

    assert ui.client.post("/v1/rosters", content=with_new_class(), headers={**ui.h(), **ZIP}).status_code == 200
    sign_in(ui, ui.keys["a_teacher"])
    page = ui.client.get("/ui/classes/class-lab/rotation")
    assert page.status_code == 200 and "plan again once" in page.text
    assert "Entry diagnostic for Lea Novak, Ravi Shah, Zoe Martin" in page.text
    assert 'name="assessment"' in page.text and 'name="skip_diagnostic"' in page.text
    assert "Entry diagnostic for" not in ui.client.get("/ui/classes/class-4a/rotation").text  # graded
    one_seat = ui.client.get("/ui/classes/class-lab/rotation.csv?assessment=1").text
    rows = list(csv.DictReader(io.StringIO(one_seat)))
    diagnosing = {r["name"]: r["block"] for r in rows if r["kind"] == "entry_diagnostic"}
    assert diagnosing == {"Lea Novak": "1", "Ravi Shah": "2", "Zoe Martin": "3"}  # one at a time
    assert "No seat for the entry diagnostic today" in ui.client.get("/ui/classes/class-lab/rotation?assessment=0").text
    skipped = ui.client.get("/ui/classes/class-lab/rotation?skip_diagnostic=true")
    assert "Entry diagnostic for" not in skipped.text and "checked" in skipped.text
    rows = list(
        csv.DictReader(io.StringIO(ui.client.get("/ui/classes/class-lab/rotation.csv?skip_diagnostic=true").text))
    )
    assert rows and all(r["kind"] != "entry_diagnostic" for r in rows)


def _block_over_form(html: str) -> dict:
    form = re.search(r'<form method="post" action="([^"]+/block-over)".*?</form>', html, re.S)
    assert form, html
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form.group(0)))
    held = re.findall(r'<input type="checkbox" name="held" value="([^"]+)" checked>', form.group(0))
    return {"action": form.group(1), **{k: v.replace("&amp;", "&") for k, v in fields.items()}, "held": held}


def test_the_rest_of_a_session_is_planned_again_when_a_block_is_over(ui) -> None:
    """Once a block is over the page plans the rest, keeps the settings, marks the blocks over,
    and has nothing to offer after the last block. The lessons the teacher led in the block are
    recorded as held (no answer comes from them): the rest of the session does not gather the
    same students on the same standard again, which it does when the teacher unticks them."""
    import csv

    sign_in(ui, ui.keys["a_teacher"])
    page = ui.client.get("/ui/classes/class-4a/rotation?online_practice=4")
    assert "Block 1 is over: plan the rest" in page.text
    form = _block_over_form(page.text)
    assert form["block"] == "0" and "online_practice=4" in form["back"] and "blocks_done=1" in form["back"]
    groups = [
        g
        for g in ui.client.app.state.service.rotation(  # the groups of block 1, as the page shows them
            "tenant-a", sorted({v.split()[0] for v in form["held"]}), unseen=True
        )[0].groups
        if g.block == 0
    ]
    assert groups and len(form["held"]) == sum(len(g.learners) for g in groups)
    met = {(lid, g.standard) for g in groups for lid in g.learners}

    def regrouped() -> set:
        rest = ui.client.app.state.service.rotation(
            "tenant-a", sorted({lid for lid, _ in met}), unseen=True, blocks_done=1
        )[0]
        return {(lid, g.standard) for g in rest.groups for lid in g.learners} & met

    unticked = ui.client.post(form["action"], data={**form, "held": []}, follow_redirects=False)
    assert unticked.status_code == 303 and unticked.headers["location"] == form["back"]
    assert regrouped()  # nothing says the lesson was held: the same need, the same group
    sent = ui.client.post(form["action"], data=form, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == form["back"]
    assert not regrouped()  # held: they practise it now
    store = ui.store
    for lid, _ in met:
        kinds = [e.kind for e in store.events("tenant-a", lid)]
        assert kinds.count("exposure") == 1, (lid, kinds)
    assert ui.client.post(form["action"], data=form, follow_redirects=False).status_code == 303  # a reload
    assert sum(e.kind == "exposure" for lid, _ in met for e in store.events("tenant-a", lid)) == len(met)

    rest = ui.client.get(form["back"])
    assert rest.status_code == 200
    assert "Blocks 2–3 planned again" in rest.text and "Block 2 is over: plan the rest" in rest.text
    assert "(block 1 is over)" in rest.text
    assert rest.text.count(" · over</small>") == 1
    assert '<input type="hidden" name="blocks_done" value="1">' in rest.text  # "Plan again" keeps it
    assert _block_over_form(rest.text)["block"] == "1"
    rows = list(csv.DictReader(io.StringIO(ui.client.get(form["back"].replace("rotation?", "rotation.csv?")).text)))
    assert rows and {r["block"] for r in rows} <= {"2", "3"}
    last = ui.client.get("/ui/classes/class-4a/rotation?blocks_done=2")
    assert "Block 3 planned again" in last.text and "is over: plan the rest" not in last.text
    assert "(blocks 1–2 are over)" in last.text
    # past the last block: the last block is planned
    assert "Block 3 planned again" in ui.client.get("/ui/classes/class-4a/rotation?blocks_done=9").text
    # what the form may not do: a stranger, an item that answers, an expired form
    stranger = ui.client.post(form["action"], data={**form, "held": [f"nobody {groups[0].item.id}"]})
    assert stranger.status_code == 404 and "No student &#39;nobody&#39;" in stranger.text
    lid = groups[0].learners[0]
    practice = next(i.id for i in ui.client.app.state.engine.catalog if i.modality.answers)
    assert ui.client.post(form["action"], data={**form, "held": [f"{lid} {practice}"]}).status_code == 422
    assert ui.client.post(form["action"], data={**form, "held": [f"{lid} no-such-item"]}).status_code == 404
    assert ui.client.post(form["action"], data={**form, "csrf": "guess"}).status_code == 403


def test_a_dashboard_setting_left_empty_is_its_default(ui) -> None:
    sign_in(ui, ui.keys["a_teacher"])
    query = "struggling_below=&excelling_above=90&min_answers=&inactive_days="
    r = ui.client.get(f"/ui/classes/class-4a?{query}")
    assert r.status_code == 200, r.text[:300]
    assert 'name="struggling_below" min="0" max="100" step="1" value="60"' in r.text
    assert 'name="min_answers" min="0" max="1000" value="5"' in r.text
    bad = ui.client.get("/ui/classes/class-4a?excelling_above=101")
    assert bad.status_code == 422 and "excelling_above: Input should be less than or equal to 100" in bad.text


def test_the_way_back_is_a_workable_pace_or_a_later_date(ui) -> None:
    """Off track: a catch-up pace until the goal date when it is at most three times the planned
    minutes; otherwise a later date (it advised 1,455 minutes a day for a goal due tomorrow)."""
    from types import SimpleNamespace

    from configs import PlannerConfig
    from engine.planner.gps import DAY, OwnPace
    from serving.ui.pages import _way_back

    config = PlannerConfig()  # 45 minutes 5 days a week: 32 a calendar day
    now = 1_790_000_000.0

    def off_track(minutes: float, days_left: float, own: OwnPace | None = None) -> str:
        gps = SimpleNamespace(
            estimated_minutes=minutes,
            estimated_activities=minutes / 10,  # ten-minute activities
            due=now + days_left * DAY,
            estimated_days=minutes / 32.14,
            own_pace=own,
        )
        return _way_back(gps, config, now)

    assert off_track(640, 10).startswith("about 64 minutes a day until")
    assert "1000 minutes a day, more than 3 times the planned 32: move the goal date to about" in off_track(1000, 1)
    assert off_track(100, -1).startswith("the date has passed")
    # with a pace of their own: in activities a day, next to what the student has been doing
    slow = OwnPace(0.5, 28, 128.0)
    assert off_track(640, 10, slow).startswith(
        "about 6.4 activities a day until 2026-10-01 would get there (the student has done 0.5 a day over the last "
        "28 days; the plan counts 3.2)"
    )
    assert "would take 100.0 activities a day, more than 3 times the planned 3.2 (the student has done 0.5)" in (
        off_track(1000, 1, slow)
    )

    sign_in(ui, ui.keys["a_teacher"])
    tomorrow = dt.datetime.fromtimestamp(ui.client.app.state.service.clock() + DAY, dt.UTC).date().isoformat()
    r = ui.client.put("/v1/learners/stu-1001/goal", json={"standards": ["5.NF.B.3"], "date": tomorrow}, headers=ui.h())
    assert r.status_code == 200, r.text
    page = ui.client.get("/ui/learners/stu-1001").text
    assert "Off track for the goal date" in page and "move the goal date to about" in page, page


def test_another_tenant_sees_none_of_the_pages(ui) -> None:
    sign_in(ui, ui.keys["b_all"])
    assert "Grade 4 Math" not in ui.client.get("/ui/classes").text
    for path in (
        "/ui/classes/class-4a",
        "/ui/classes/class-4a/rotation",
        "/ui/classes/class-4a/rotation.csv",
        "/ui/learners/stu-1000",
    ):
        assert ui.client.get(path).status_code == 404, path
    page = ui.client.get("/ui/classes")
    refused = ui.client.post(
        "/ui/classes/class-4a/overrides",
        data={"csrf": csrf_of(page.text), "learner_id": "stu-1000", "action": "pin", "value": "4.NF.A.1"},
    )
    assert refused.status_code == 404
    assert ui.client.post("/ui/learners/stu-1000/link", data={"csrf": csrf_of(page.text)}).status_code == 404


def test_a_district_s_classes_come_a_page_at_a_time_and_by_school(ui, monkeypatch) -> None:
    import serving.ui

    monkeypatch.setattr(serving.ui, "CLASSES_PAGE", 1)
    buffer = io.BytesIO()  # a second school with one class
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.csv", "propertyName,value\nfile.orgs,delta\nfile.classes,delta\n")
        archive.writestr("orgs.csv", "sourcedId,name,type,parentSourcedId\norg-school-9,Hillside Middle,school,\n")
        archive.writestr(
            "classes.csv", "sourcedId,title,schoolSourcedId,classType\nclass-7z,Grade 7 Math,org-school-9,scheduled\n"
        )
    r = ui.client.post("/v1/rosters", content=buffer.getvalue(), headers={**ui.h(), "content-type": "application/zip"})
    assert r.status_code == 200, r.text
    sign_in(ui, ui.keys["a_all"])
    first = ui.client.get("/ui/classes").text
    assert "Classes 1-1 of 3." in first and "Grade 4 Math - Ramos" in first and "Grade 5 Math" not in first
    assert "Hillside Middle (1)" in first and "Lincoln Elementary (2)" in first
    # schools by name (Lincoln's id sorts first), numbers in names by value
    assert first.index("Hillside Middle (1)") < first.index("Lincoln Elementary (2)")
    assert sorted(["School 10", "school 9", "School 9"], key=serving.ui._natural) == [
        "school 9",
        "School 9",
        "School 10",
    ]
    nxt = re.search(r'href="(/ui/classes\?[^"]+)">Next classes', first)
    assert nxt, first
    second = ui.client.get(nxt.group(1).replace("&amp;", "&")).text
    assert "Classes 2-2 of 3." in second and "Grade 5 Math - Chen" in second
    hillside = ui.client.get("/ui/classes", params={"school": "org-school-9"}).text
    assert "Grade 7 Math" in hillside and "Grade 4 Math" not in hillside and "Next classes" not in hillside
    assert "No classes here." in ui.client.get("/ui/classes", params={"school": "nowhere"}).text
    assert ui.client.get("/ui/classes", params={"after": "x" * 300}).status_code == 422


def test_a_student_with_nothing_planned_is_named_with_the_reason() -> None:
    """The rotation grid lists who has nothing planned and why, instead of leaving them out."""
    from engine.planner.playlist import Playlist, Rotation
    from serving.ui.pages import rotation_grid

    class Names:
        def name_of(self, learner_id: str) -> str:
            return {"s1": "Ines Park", "s2": "Omar Diaz"}[learner_id]

    why = ("no_items", "the catalog has no item on this framework's standards yet")
    rotation = Rotation(60, 20, {"s2": Playlist(60, [], 60, [], [], why), "s1": Playlist(60, [], 60, [], [], None)}, [])
    grid = rotation_grid(rotation, Names())  # type: ignore[arg-type]
    assert grid["unplanned"] == [{"name": "Omar Diaz", "why": why[1]}]


def test_an_admin_imports_the_roster_from_the_roster_page(api) -> None:
    """The roster page takes the OneRoster zip a browser sends (multipart) and follows its import;
    only an admin's key reaches it, and only with the page's form token."""
    import time

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(SCHOOL.glob("*.csv")):
            archive.write(path, path.name)
    assert sign_in(api, api.keys["a_teacher"]).status_code == 303
    assert api.client.get("/ui/roster").status_code == 403
    assert 'href="/ui/roster"' not in api.client.get("/ui/classes").text

    assert sign_in(api, api.keys["a_all"]).status_code == 303
    empty = api.client.get("/ui/classes").text
    assert 'href="/ui/roster"' in empty and "roster page" in empty
    page = api.client.get("/ui/roster")
    assert page.status_code == 200 and "No import yet." in page.text and 'enctype="multipart/form-data"' in page.text
    token = csrf_of(page.text)
    zip_file = ("school-export.zip", buffer.getvalue(), "application/zip")
    forged = api.client.post("/ui/roster", data={"csrf": "guess"}, files={"bundle": zip_file})
    assert forged.status_code == 403
    bad = api.client.post(
        "/ui/roster", data={"csrf": token}, files={"bundle": ("notes.zip", b"not a zip", "application/zip")}
    )
    assert bad.status_code == 422 and "notes.zip: not a readable zip file" in bad.text
    blank = api.client.post("/ui/roster", data={"csrf": token}, files={"bundle": ("e.zip", b"", "application/zip")})
    assert blank.status_code == 422 and "The file is empty" in blank.text

    sent = api.client.post("/ui/roster", data={"csrf": token}, files={"bundle": zip_file}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/ui/roster"
    deadline = time.monotonic() + 30
    while 'data-status="done"' not in (page := api.client.get("/ui/roster").text):
        assert time.monotonic() < deadline and 'data-status="failed"' not in page, page[-2000:]
        time.sleep(0.1)
    assert "30 students, 2 teachers, 2 classes" in page and "users +32 ~0 -0" in page
    assert 'http-equiv="refresh"' not in page  # nothing left to follow
    listed = api.client.get("/ui/classes").text
    assert "Grade 4 Math - Ramos" in listed and "Grade 5 Math - Chen" in listed


def test_a_student_who_has_not_answered_yet_is_not_started_not_on_track(ui) -> None:
    """The GPS estimate holds at the planned pace; a teacher reads "on track" as "keeping it", which
    a student with no answer has not shown yet."""
    goal = {"standards": ["4.NF.B.3.a"], "date": "2035-06-01T00:00:00Z"}
    assert ui.client.put("/v1/learners/stu-1000/goal", json=goal, headers=ui.h()).status_code == 200
    sign_in(ui, ui.keys["a_teacher"])
    badge = re.compile(r'class="big badge s-([a-z_]+)">([^<]+)</span><br>([^<]+)</div>')
    status, label, text = badge.search(ui.client.get("/ui/learners/stu-1000").text).groups()
    assert (status, label) == ("not_started", "not started") and text.startswith("no practice yet; at the planned")
    answer = {"id": "first", "learner_id": "stu-1000", "item_id": "gen-K.CC.A.1-check", "correct": True}
    assert ui.client.post("/v1/events", json=[answer], headers=ui.h()).status_code == 200
    page = ui.client.get("/ui/learners/stu-1000").text
    status, label, text = badge.search(page).groups()
    assert (status, label) == ("on_track", "on track") and text.startswith("needs about")
    # with the arrival, the dates between which half of the students arrive, around it
    eta, low, high = re.search(
        r'<span class="big">([0-9-]+)</span><br>estimated arrival.*?half of students arrive between ([0-9-]+) and ([0-9-]+)',
        page,
        re.S,
    ).groups()
    assert low <= eta <= high and low < high
    # counted with the deployment's overhead until enough of the school's students have arrived
    assert "counted as 3.0 times that cost (measured with simulated students until enough" in " ".join(page.split())


def test_a_student_behind_the_goal_at_their_own_pace_is_in_the_support_group_with_the_numbers(ui) -> None:
    """Right often enough and never stuck, but two answers a week: at that pace the goal date is out
    of reach, which the planned pace would not show. The dashboard puts her with the students who
    need support, saying why in numbers."""
    from engine.planner.gps import DAY

    now = ui.client.app.state.service.clock()
    due = dt.datetime.fromtimestamp(now + 20 * DAY, dt.UTC).date().isoformat()
    goal = {"standards": ["4.NF.B.3"], "date": due}
    assert ui.client.put("/v1/learners/stu-1002/goal", json=goal, headers=ui.h()).status_code == 200
    catalog = ui.client.app.state.engine.catalog
    item = next(i.id for i in catalog if i.standards == ("4.OA.A.2",) and not i.mastery_check)
    answers = [
        {"id": f"slow{k}", "learner_id": "stu-1002", "item_id": item, "correct": k % 3 != 1, "timestamp": t}
        for k, t in enumerate(now - (21 - 3.5 * k) * DAY for k in range(6))
    ]
    sent = ui.client.post("/v1/events", json=answers, headers=ui.h()).json()
    assert (sent["accepted"], sent["unaligned"]) == (6, 0), sent
    sign_in(ui, ui.keys["a_teacher"])
    page = ui.client.get("/ui/classes/class-4a").text
    struggling = page[page.index('data-group="struggling"') : page.index('data-group="on_track"')]
    assert "Chloe Nguyen" in struggling
    assert "behind the pace needed to reach the goal by its date: at the learner&#39;s pace (0.3 activities a day" in (
        struggling
    )
    row = re.search(r"Chloe Nguyen</a></td>(.*?)</tr>", page[page.index("<h2>Pace and progress") :], re.S)
    assert row and '<td class="num">0.3 a day</td>' in row.group(1)  # her pace, in the pace table
    # her ETA, with the dates between which half of the students arrive when pointed at
    low, high, eta = re.search(
        r'<td title="half of students arrive between ([0-9-]+) and ([0-9-]+)">([0-9-]+)</td>', row.group(1)
    ).groups()
    assert low < eta < high
    assert "the sum counts 3.0 times that cost" in " ".join(page.split())


def test_a_goal_the_catalog_cannot_show_learned_is_said_so_not_a_struggle(ui) -> None:
    """A goal standard with only a reading (a tenant's framework, F.1 -> F.2): the student's page
    says the catalog cannot get her there, not that she struggles on it."""
    c, h = ui.client, ui.h()

    def node(ident: str, code: str) -> dict:
        return {"identifier": ident, "uri": f"urn:uuid:{ident}", "humanCodingScheme": code,
                "fullStatement": f"statement {code}", "CFItemType": "Standard", "educationLevel": ["04"]}  # fmt: skip

    framework = {"CFDocument": {"identifier": "d-f", "title": "F"}, "CFItems": [node("f1", "F.1"), node("f2", "F.2")],
                 "CFAssociations": []}  # fmt: skip
    assert c.post("/v1/standards/import?allow_empty=true", json=framework, headers=h).status_code == 200
    reading = {
        "id": "f1-read",
        "title": "F.1 reading",
        "standards": ["F.1"],
        "modality": "reading",
        "duration_minutes": 5,
    }
    assert c.put("/v1/items", json=[reading], headers=h).status_code == 200
    assert c.put("/v1/learners/stu-1000/goal", json={"standards": ["F.1"]}, headers=h).status_code == 200
    sign_in(ui, ui.keys["a_teacher"])
    page = c.get("/ui/learners/stu-1000").text
    assert "The goal cannot be reached with this catalog" in page
    assert "sends an answer practises F.1" in page and "Struggling on" not in page
