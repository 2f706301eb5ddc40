"""The teacher's and the student's web pages in a real browser: Debian's Chromium, headless,
driven by Playwright against the API served over HTTP. A teacher signs in and reads the class
dashboard, today's rotation (its print view and CSV) and a student's GPS; a student link shows only
that student; a teacher of one class cannot open another.

Set ``ZPD_UI_SCREENSHOTS=DIR`` to save a screenshot of each view there (the README's come from it).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import LiveServer

pytestmark = pytest.mark.slow


def chromium() -> str:
    """The system Chromium; installed with apt when missing and allowed (CI runs as root on Debian)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, timeout=1200)
        found = shutil.which("chromium")
    if not found:
        pytest.fail("no chromium: install Debian's chromium package (apt-get install -y chromium)")
    return found


@pytest.fixture(scope="module")
def school(tmp_path_factory, shared_engine):
    from configs import load_config
    from serving.app import create_app
    from serving.auth import create_key
    from serving.stores import open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('ui') / 'zpd.db'}")
    keys = {
        "admin": create_key(store, "school", ["ingest", "read", "teacher", "admin"]),
        "ramos": create_key(store, "school", ["read", "teacher"], user="t-ramos"),
        "ingest": create_key(store, "school", ["ingest"]),
    }
    server = LiveServer(create_app(load_config(env={}), store=store, engine=shared_engine))
    import httpx

    from .test_rosters import ZIP, with_new_class

    admin = {"Authorization": f"Bearer {keys['admin']}"}
    with httpx.Client(base_url=server.url, headers=admin, timeout=60) as client:
        assert client.post("/v1/rosters", content=with_new_class(), headers=ZIP).status_code == 200
        goal = {"standards": ["4.NF.B.3"], "date": "2027-05-01T00:00:00Z"}
        assert client.put("/v1/classes/class-4a/goal", json=goal).status_code == 200
        catalog = shared_engine.catalog
        by_standard = {}
        for item in catalog:
            by_standard.setdefault(item.standards[0], []).append(item.id)
        events = []
        students = [f"stu-{1000 + i}" for i in range(12)]  # three of the fifteen have not started
        for i, learner in enumerate(students):
            for j, standard in enumerate(["3.NF.A.1", "3.NF.A.2.a", "3.NF.A.3.a", "3.OA.A.1"]):
                for k, item in enumerate(by_standard[standard][:4]):
                    correct = i < 4 or (i < 8 and k % 2 == 0) or (i >= 8 and k % 4 == 0)  # strong, mixed, weak
                    events.append(
                        {"id": f"{learner}-{j}-{k}", "learner_id": learner, "item_id": item, "correct": correct}
                    )
        assert client.post("/v1/events", json=events).status_code == 200
    yield server, keys
    server.stop()
    store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("ZPD_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(page, url: str, key: str, target: str) -> None:
    page.goto(url + target)
    assert "/ui/login" in page.url  # not signed in: the sign-in page, which brings her back
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(url + target)


def test_a_teacher_reads_her_class_rotation_and_a_students_gps(school, browser, tmp_path) -> None:
    server, keys = school
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, server.url, keys["ramos"], "/ui/classes")
    assert page.inner_text("h1") == "Your classes"
    assert page.locator("table").inner_text().count("Grade 4 Math - Ramos") == 1
    assert "Grade 5 Math" not in page.content()  # only her classes
    shot(page, "classes")

    page.click("text=Grade 4 Math - Ramos")
    assert page.inner_text("h1") == "Grade 4 Math - Ramos"
    groups = {
        g: page.locator(f"[data-group={g}] li").count() for g in ("struggling", "on_track", "excelling", "not_enough")
    }
    assert sum(groups.values()) == 15
    assert groups["not_enough"] == 4  # the last three, and Hana Sato (her SIS id is an e-mail: rostered as a hash)
    assert groups["excelling"] >= 1 and groups["struggling"] >= 1
    assert "Ana Silva" in page.locator("[data-group=excelling]").inner_text()
    heat = page.locator("table.heatmap")
    assert heat.locator("tbody tr").count() == 15
    assert "4.NF.B.3.a" in heat.locator("thead").inner_text()
    pace = page.locator("table.pace").inner_text()
    assert "2027-05-01" in pace and ("on track" in pace or "at risk" in pace)
    shot(page, "dashboard")
    # the teacher changes a threshold: everyone with an answer is now "not enough information"
    page.fill("input[name=min_answers]", "100")
    page.click("form.settings button")
    assert page.locator("[data-group=not_enough] li").count() == 15

    page.goto(server.url + "/ui/classes/class-4a/rotation")
    assert page.inner_text("h1").startswith("Today's rotation")
    grid = page.locator("table.grid").inner_text()
    for name in ("Ana Silva", "Ben Okafor", "Omar Khan"):
        assert name in grid or name in page.locator("table.groups-table").inner_text()
    assert "Idle student-minutes: 0" in page.content()
    # the students with no answer yet have a grade: planned from it, with no diagnostic
    assert page.locator("table.grid .k-entry_diagnostic").count() == 0
    shot(page, "rotation")
    page.emulate_media(media="print")
    assert not page.locator("header.bar").is_visible() and not page.locator("form.settings").first.is_visible()
    assert page.locator(".print-only").is_visible() and page.locator("table.grid").is_visible()
    page.emulate_media(media="screen")
    with page.expect_download() as download:
        page.click("text=Download CSV")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["name"] for r in rows} >= {"Ana Silva", "Omar Khan"} and len({r["learner_id"] for r in rows}) == 15
    assert download.value.suggested_filename.startswith("rotation-class-4a-")

    # a change on the rotation page becomes the student's override
    page.select_option("select[name=learner_id]", label="Ben Okafor")
    page.select_option("select[name=action]", value="pin")
    page.fill("input[name=value]", "4.NF.A.1")
    page.click("text=Apply")
    page.wait_for_url(server.url + "/ui/classes/class-4a/rotation")

    # block 1 is over: the small groups of block 1 are ticked as held; one student was not there
    held = page.locator("form.block-over input[name=held]")
    assert held.count() >= 2 and all(held.nth(i).is_checked() for i in range(held.count()))
    absent, present = (held.nth(i).get_attribute("value").split(" ", 1) for i in (0, 1))
    held.first.uncheck()
    page.click("text=Block 1 is over: plan the rest")
    assert "blocks_done=1" in page.url and page.locator("p.replanned").inner_text().startswith("Blocks 2–3")
    assert page.locator("form.block-over input[name=block]").get_attribute("value") == "1"
    import httpx

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys['admin']}"}) as api:

        def lessons(learner: str, item: str) -> int:
            recent = api.get(f"/v1/learners/{learner}/profile", params={"recent": 50}).json()["recent_evidence"]
            return sum(e["kind"] == "exposure" and e["item_id"] == item for e in recent)

        assert lessons(*absent) == 0 and lessons(*present) == 1
    page.goto(server.url + "/ui/classes/class-4a/rotation")

    # the teacher shortens the blocks in the settings form, the seats left empty, and applies
    page.fill("form.settings input[name=block_minutes]", "15")
    page.click("form.settings button")
    assert page.inner_text("h1").startswith("Today's rotation"), page.content()[:500]
    assert page.input_value("input[name=block_minutes]") == "15" and "video=&" in page.url
    # the first block is over: the rest of the session is planned again, the settings kept (no
    # small group fits a 15-minute block: no lesson to say was held)
    assert page.locator("form.block-over input[name=held]").count() == 0
    page.click("text=Block 1 is over: plan the rest")
    assert "blocks_done=1" in page.url and page.input_value("input[name=block_minutes]") == "15"
    assert page.locator("p.replanned").inner_text().startswith("Blocks 2–4 planned again")
    assert page.locator("table.grid tr.done").count() == 1
    assert page.locator("table.grid tr.done td .entry").count() == 0  # nothing planned in a block over
    page.click("form.settings button")  # planning again keeps the blocks over
    assert "blocks_done=1" in page.url and page.locator("table.grid tr.done").count() == 1

    # a class added in the year, exported without grades: its students start with the diagnostic
    page.goto(server.url + "/ui/classes/class-lab/rotation")
    diagnostic = page.locator("p.diagnostic").first.inner_text()
    assert "Entry diagnostic for Lea Novak, Ravi Shah, Zoe Martin" in diagnostic, diagnostic
    assert "plan again once they are done" in diagnostic
    assert page.locator("table.grid .k-entry_diagnostic").count() == 3
    shot(page, "rotation-new-class")
    page.check("form.settings input[name=skip_diagnostic]")
    page.click("form.settings button")
    assert "skip_diagnostic=true" in page.url and page.is_checked("input[name=skip_diagnostic]")
    assert page.locator("table.grid .k-entry_diagnostic").count() == 0 and not page.locator("p.diagnostic").count()

    page.goto(server.url + "/ui/classes/class-4a")
    page.click("[data-group=excelling] >> text=Ana Silva")
    assert page.inner_text("h1").startswith("Ana Silva")
    assert page.locator("svg.map .node").count() >= 2
    assert page.locator("ol.next li").count() >= 1 and "Chance of success" in page.locator("ol.next").inner_text()
    evidence = page.locator("text=What is mastered, and the evidence").locator("xpath=..").inner_text()
    assert "mastered on" in evidence
    shot(page, "gps")
    page.click("text=Make a link for Ana Silva")
    link = page.input_value("input[aria-label='Student link']")

    # the student's view: that student only, no teacher tools, nothing else reachable
    student = browser.new_context().new_page()
    student.goto(link)
    assert student.inner_text("h1").startswith("Ana Silva")
    assert "Sign out" not in student.content() and "Make a link" not in student.content()
    assert "Ben Okafor" not in student.content()
    # a student reads what to do next and the chance of success, not the planner's reasoning
    assert "Chance of success" in student.content() and "ZPD band" not in student.content()
    shot(student, "student")
    student.goto(server.url + "/ui/classes/class-4a")
    assert "/ui/login" in student.url
    student.goto(link[:-3] + "xyz")
    assert "not valid" in student.content()

    # a teacher of class A cannot open class B, its rotation or its students
    for path in ("/ui/classes/class-5b", "/ui/classes/class-5b/rotation", "/ui/learners/stu-1020"):
        response = page.goto(server.url + path)
        assert response is not None and response.status == 404, path
        assert "among your" in page.content()
    context.close()


def test_a_key_without_teacher_scope_cannot_sign_in(school, browser) -> None:
    server, keys = school
    page = browser.new_page()
    page.goto(server.url + "/ui/login")
    page.fill("input[name=key]", keys["ingest"])
    page.click("button[type=submit]")
    assert "not a teacher" in page.inner_text("[role=alert]")
    page.goto(server.url + "/ui/classes")
    assert "/ui/login" in page.url
    page.close()


def test_an_admin_sends_the_roster_export_from_the_browser(school, browser, tmp_path) -> None:
    """The roster page takes the zip a person picks, and follows the import to its end by
    reloading itself (no script); the teacher's page has no such link."""
    server, keys = school
    from .test_rosters import with_new_class

    export = tmp_path / "sis-export.zip"
    export.write_bytes(with_new_class())  # what the school's roster holds already
    page = browser.new_page()
    sign_in(page, server.url, keys["admin"], "/ui/classes")
    page.click("header >> text=Roster")
    assert page.inner_text("h1") == "Roster"
    page.set_input_files("input[name=bundle]", str(export))
    page.click("text=Import")
    page.wait_for_url(server.url + "/ui/roster")
    done = page.wait_for_selector("table.imports tbody tr:first-child[data-status=done]", timeout=60_000)
    row = done.inner_text()  # the newest import, this one: the school's roster again
    assert "33 students, 2 teachers, 3 classes" in row and "no change" in row, row
    assert "sis-export.zip/courses.csv: not a file this import reads" in row
    shot(page, "roster")
    page.close()

    teacher = browser.new_page()
    sign_in(teacher, server.url, keys["ramos"], "/ui/classes")
    assert "Roster" not in teacher.inner_text("header")
    response = teacher.goto(server.url + "/ui/roster")
    assert response is not None and response.status == 403
    teacher.close()


def test_a_teacher_sets_goals_from_the_browser(school, browser) -> None:
    """A class's goal and one student's own goal, set and cleared in the pages (the API's goal,
    standards in any spelling it takes); a standard the framework does not have is a page that
    names it; a teacher cannot set the goal of a class that is not hers."""
    server, keys = school
    page = browser.new_page()
    sign_in(page, server.url, keys["admin"], "/ui/classes/class-5b")
    goal = page.locator("section[aria-label='Class goal']")
    assert "No student of this class has a goal yet." in goal.inner_text()
    goal.locator("input[name=standards]").fill("5.NF.A.1, CCSS.Math.Content.5.NF.B.3")
    goal.locator("input[name=date]").fill("2027-06-01")
    goal.locator("button").click()
    page.wait_for_url(server.url + "/ui/classes/class-5b")
    assert "Every student: 5.NF.A.1, 5.NF.B.3, by 2027-06-01." in goal.inner_text()
    student = page.locator("[data-group] li a").first
    name = student.inner_text()
    student.click()
    own = page.locator("section[aria-label=Goal]")
    assert own.locator("input[name=standards]").input_value() == "5.NF.A.1, 5.NF.B.3"
    assert own.locator("input[name=date]").input_value() == "2027-06-01"
    assert "goal date 2027-06-01" in page.locator("section.summary").inner_text()
    own.locator("input[name=standards]").fill("5.NF.A.1")
    own.locator("button[value=set]").click()
    assert page.locator("section.summary svg, svg.map .node").count() >= 1
    assert own.locator("input[name=standards]").input_value() == "5.NF.A.1"
    page.goto(server.url + "/ui/classes/class-5b")
    listed = goal.inner_text()
    assert "14 students: 5.NF.A.1, 5.NF.B.3, by 2027-06-01" in listed and "1 student: 5.NF.A.1, by 2027-06-01" in listed
    page.click(f"[data-group] >> text={name}")
    own.locator("button[value=clear]").click()
    assert "No goal yet" in page.content() and own.locator("input[name=standards]").input_value() == ""
    page.goto(server.url + "/ui/classes/class-5b")
    assert "1 student: no goal" in goal.inner_text()

    goal.locator("input[name=standards]").fill("5.NF.A.1, 9.ZZ.Z.9")
    response = None
    with page.expect_navigation() as navigation:
        goal.locator("button").click()
    response = navigation.value
    assert response is not None and response.status == 404 and "9.ZZ.Z.9" in page.content()
    page.close()

    teacher = browser.new_page()  # Ms Ramos teaches class-4a, not class-5b
    sign_in(teacher, server.url, keys["ramos"], "/ui/classes/class-4a")
    csrf = teacher.locator("section[aria-label='Class goal'] input[name=csrf]").input_value()
    refused = teacher.request.post(
        server.url + "/ui/classes/class-5b/goal", form={"standards": "5.NF.A.1", "date": "", "csrf": csrf}
    )
    assert refused.status == 404 and "among your" in refused.text()
    teacher.close()


def test_a_file_over_the_limit_gets_a_page_that_says_what_to_do(browser, tmp_path, shared_engine) -> None:
    """An export over the upload limit is refused before it is read, with a page for the person at
    the browser (not the API's JSON): what the limit is, the command that imports it, a way back."""
    from configs import load_config
    from serving.app import create_app
    from serving.auth import create_key
    from serving.stores import open_store

    config = load_config(env={})
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"max_roster_bytes": 4000})})
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    key = create_key(store, "district", ["admin", "read", "teacher"])
    server = LiveServer(create_app(config, store=store, engine=shared_engine))
    try:
        export = tmp_path / "district.zip"
        export.write_bytes(b"PK" + os.urandom(20_000))
        page = browser.new_page()
        sign_in(page, server.url, key, "/ui/roster")
        page.set_input_files("input[name=bundle]", str(export))
        with page.expect_response(lambda r: r.url.endswith("/ui/roster") and r.request.method == "POST") as sent:
            page.click("text=Import")
        assert sent.value.status == 413
        page.wait_for_selector("h1")
        assert page.inner_text("h1") == "File too large"
        assert "zpd roster import FILE --tenant TENANT" in page.inner_text("main")
        page.click("text=Back")
        page.wait_for_url(server.url + "/ui/roster")
        assert page.inner_text("h1") == "Roster"
        page.close()
    finally:
        server.stop()
        store.close()
