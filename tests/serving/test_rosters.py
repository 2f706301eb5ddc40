"""Classes and rosters over the API and the command line: a OneRoster bundle of one school, two
classes and 30 students imports; teachers see their own classes; a class gets one goal and one
rotation; roster grades feed the starting belief; deleting a learner erases their roster entry."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

SCHOOL = Path(__file__).resolve().parent.parent / "data" / "oneroster_school"
ZIP = {"content-type": "application/zip"}


def bundle_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(SCHOOL.glob("*.csv")):
            archive.write(path, path.name)
    return buffer.getvalue()


@pytest.fixture()
def rostered(any_api):
    response = any_api.client.post("/v1/rosters", content=bundle_zip(), headers={**any_api.h(), **ZIP})
    assert response.status_code == 200, response.text
    return any_api, response.json()


def test_a_school_imports_and_lists_its_classes(rostered) -> None:
    api, result = rostered
    assert result["counts"]["students"] == 30 and result["counts"]["classes"] == 2
    assert result["grades_set"] == 30
    assert any("courses.csv" in note for note in result["notes"])
    listed = api.client.get("/v1/classes", headers=api.h("a_teacher")).json()
    assert [c["title"] for c in listed["classes"]] == ["Grade 4 Math - Ramos", "Grade 5 Math - Chen"]
    assert listed["classes"][0]["students"] == 15 and listed["classes"][0]["teachers"] == ["Maria Ramos"]
    assert listed["classes"][0]["school_name"] == "Lincoln Elementary"
    one = api.client.get("/v1/classes/class-4a", headers=api.h("a_teacher")).json()
    assert one["members"][0] == {"learner_id": "t-ramos", "name": "Maria Ramos", "role": "teacher", "grade": None}
    students = [m for m in one["members"] if m["role"] == "student"]
    assert len(students) == 15 and {m["grade"] for m in students} == {"4"}
    assert "@" not in json.dumps(one)

    again = api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ZIP}).json()
    assert again["grades_set"] == 0
    assert all(not any(c.values()) for c in again["changes"].values())


def test_a_teacher_sees_only_her_classes_and_tenants_stay_apart(rostered) -> None:
    from serving.auth import create_key

    api, _ = rostered
    ramos = {"Authorization": f"Bearer {create_key(api.store, 'tenant-a', ['read', 'teacher'], user='t-ramos')}"}
    assert [c["class_id"] for c in api.client.get("/v1/classes", headers=ramos).json()["classes"]] == ["class-4a"]
    refused = api.client.get("/v1/classes/class-5b", headers=ramos)
    assert refused.status_code == 404 and refused.json()["error"]["field"] == "class_id"
    assert (
        api.client.put("/v1/classes/class-5b/goal", json={"standards": ["5.NF.A.1"]}, headers=ramos).status_code == 404
    )
    assert api.client.post("/v1/classes/class-5b/rotation", json={}, headers=ramos).status_code == 404
    assert api.client.get("/v1/classes", headers=api.h("b_all")).json() == {"total": 0, "classes": []}
    assert api.client.get("/v1/classes/class-4a", headers=api.h("b_all")).status_code == 404
    assert api.client.post("/v1/rosters", content=bundle_zip(), headers={**ramos, **ZIP}).status_code == 403


def test_a_class_goal_a_rotation_and_roster_grades(rostered) -> None:
    api, _ = rostered
    goal = api.client.put("/v1/classes/class-4a/goal", json={"standards": ["4.NF.B.3"]}, headers=api.h("a_teacher"))
    assert goal.status_code == 200 and len(goal.json()["learners"]) == 15
    profile = api.client.get("/v1/learners/stu-1000/profile", headers=api.h()).json()
    assert profile["grade"] == "4" and profile["goal"]["standards"] == ["4.NF.B.3"]
    nxt = api.client.get("/v1/learners/stu-1000/next", headers=api.h()).json()
    grades = {r["standard"].split(".")[0] for r in nxt["recommendations"]}
    assert grades
    assert "K" not in grades  # a rostered 4th grader does not start in kindergarten
    rotation = api.client.post("/v1/classes/class-4a/rotation", json={}, headers=api.h())
    assert rotation.status_code == 200, rotation.text
    assert len(rotation.json()["playlists"]) == 15


def test_roster_grades_are_written_in_chunks_and_a_learner_with_answers_keeps_them(any_api, monkeypatch) -> None:
    """The import writes grades a chunk of students at a time; a student who already answered
    is rebuilt from their log under the new starting belief, answers kept."""
    import serving.service

    monkeypatch.setattr(serving.service, "ROSTER_CHUNK", 7)
    api = any_api
    event = {
        "id": "e-1",
        "learner_id": "stu-1003",
        "item_id": "gen-K.CC.A.1-check",
        "correct": True,
        "timestamp": "2026-12-01T10:00:00Z",
    }
    assert api.client.post("/v1/events", json=[event], headers=api.h()).status_code == 200
    result = api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ZIP}).json()
    assert result["grades_set"] == 30
    grades = {
        m["learner_id"]: m["grade"]
        for c in ("class-4a", "class-5b")
        for m in api.client.get(f"/v1/classes/{c}", headers=api.h()).json()["members"]
        if m["role"] == "student"
    }
    assert len(grades) == 30 and set(grades.values()) == {"4", "5"}
    profile = api.client.get("/v1/learners/stu-1003/profile", headers=api.h()).json()
    assert profile["grade"] == grades["stu-1003"] and profile["events"] == 1


def test_deleting_a_learner_erases_the_roster_entry(rostered) -> None:
    api, _ = rostered
    assert api.client.delete("/v1/learners/stu-1001", headers=api.h()).status_code == 200
    members = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
    assert "stu-1001" not in [m["learner_id"] for m in members] and len(members) == 15
    assert "Okafor" not in json.dumps(api.store.get_setting("roster@tenant-a"))


def test_students_who_left_are_erased_in_one_request(rostered) -> None:
    """The end of a year: many students erased at once, with one rewrite of the roster."""
    api, _ = rostered
    before = api.store.get_setting("roster@tenant-a")[0]
    leaving = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
    ids = [m["learner_id"] for m in leaving if m["role"] == "student"][:5]
    r = api.client.post("/v1/erasures", json={"learner_ids": [*ids, "nobody-here"]}, headers=api.h())
    assert r.status_code == 200 and r.json() == {"erased": ids, "unknown": ["nobody-here"]}
    assert api.store.get_setting("roster@tenant-a")[0] == before + 1
    members = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
    assert not set(ids) & {m["learner_id"] for m in members} and len(members) == 16 - 5
    assert all(api.store.get("tenant-a", i) is None for i in ids)
    teacher = api.client.post("/v1/erasures", json={"learner_ids": ids}, headers=api.h("a_teacher"))
    assert teacher.status_code == 403
    assert api.client.post("/v1/erasures", json={"learner_ids": []}, headers=api.h()).status_code == 422


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "the body is empty"),
        (b"not a zip", "not a readable zip file"),
    ],
)
def test_bad_bundles_are_a_422_naming_the_problem(api, body, expected) -> None:
    response = api.client.post("/v1/rosters", content=body, headers={**api.h(), **ZIP})
    assert response.status_code == 422 and expected in response.json()["error"]["message"]


def test_a_bad_row_is_named_by_file_line_and_field(api) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(SCHOOL.glob("*.csv")):
            data = path.read_bytes()
            if path.name == "enrollments.csv":
                data += b"e-bad,active,2026-09-01,class-9z,org-school-7,stu-1000,student,false,,\r\n"
            archive.writestr(path.name, data)
    response = api.client.post("/v1/rosters", content=buffer.getvalue(), headers={**api.h(), **ZIP})
    assert response.status_code == 422
    assert "enrollments.csv line 34, field 'classSourcedId'" in response.json()["error"]["message"]


def test_the_roster_import_command(tmp_path) -> None:
    from zpd.cli import app

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    runner = CliRunner()
    first = runner.invoke(app, ["roster", "import", str(SCHOOL), "--tenant", "school", "--store", url, "--json"])
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert (result["counts"]["users"], result["counts"]["classes"], result["counts"]["enrollments"]) == (32, 2, 32)
    second = runner.invoke(app, ["roster", "import", str(SCHOOL), "--tenant", "school", "--store", url])
    assert second.exit_code == 0 and "(no change)" in second.stdout
    missing = runner.invoke(app, ["roster", "import", str(tmp_path / "none"), "--tenant", "school", "--store", url])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_a_teachers_key_reaches_her_own_students_only(rostered) -> None:
    from serving.auth import create_key

    api, _ = rostered
    ramos = {"Authorization": f"Bearer {create_key(api.store, 'tenant-a', ['read', 'teacher'], user='t-ramos')}"}
    assert api.client.get("/v1/learners/stu-1000/profile", headers=ramos).status_code == 200
    other = api.client.get("/v1/learners/stu-1020/profile", headers=ramos)
    assert other.status_code == 404 and other.json()["error"]["field"] == "learner_id"
    assert (
        api.client.put("/v1/learners/stu-1020/goal", json={"standards": ["5.NF.A.1"]}, headers=ramos).status_code == 404
    )
    listed = {item["learner_id"] for item in api.client.get("/v1/learners", headers=ramos).json()["learners"]}
    assert "stu-1000" in listed and "stu-1020" not in listed
    everyone = {item["learner_id"] for item in api.client.get("/v1/learners", headers=api.h()).json()["learners"]}
    assert "stu-1020" in everyone  # an admin key sees the whole tenant
    for headers, expected in ((ramos, listed), (api.h(), everyone)):  # the same learners a page at a time
        seen, after = [], ""
        while True:
            page = api.client.get("/v1/learners", params={"limit": 3, "after": after}, headers=headers).json()
            assert page["total"] == len(expected)
            seen += [item["learner_id"] for item in page["learners"]]
            if page["next"] is None:
                break
            after = page["next"]
        assert seen == sorted(expected)


def test_a_teachers_key_sends_events_for_her_students_only(rostered) -> None:
    from serving.auth import create_key

    api, _ = rostered
    ramos = {
        "Authorization": f"Bearer {create_key(api.store, 'tenant-a', ['ingest', 'read', 'teacher'], user='t-ramos')}"
    }
    item = "gen-K.CC.A.1-check"
    mine = {"id": "r1", "learner_id": "stu-1000", "item_id": item, "correct": True}
    assert api.client.post("/v1/events", json=mine, headers=ramos).status_code == 200
    other = {"id": "r2", "learner_id": "stu-1020", "item_id": item, "correct": True}
    refused = api.client.post("/v1/events", json=[{**mine, "id": "r3"}, other], headers=ramos)
    assert refused.status_code == 404 and refused.json()["error"]["field"] == "events[1]"
    assert api.store.event_hashes("tenant-a", "stu-1000", ["r3"]) == {}  # nothing of the batch was written
