"""Classes and rosters over the API and the command line: a OneRoster bundle of one school, two
classes and 30 students imports; teachers see their own classes; a class gets one goal and one
rotation; roster grades feed the starting belief; deleting a learner erases their roster entry."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.roster import KINDS
from serving.rosters import RecordNumbers

SCHOOL = Path(__file__).resolve().parent.parent / "data" / "oneroster_school"
ZIP = {"content-type": "application/zip"}


def zipped(files: dict[str, str | bytes]) -> bytes:
    """A bundle as a platform uploads it: its files, zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def bundle_zip() -> bytes:
    return zipped({path.name: path.read_bytes() for path in sorted(SCHOOL.glob("*.csv"))})  # quirks and all


#: a class the school adds in the year, its students exported without a grade (neither theirs nor
#: the class's): rows added to the school's files
NEW_CLASS = {
    "classes.csv": [
        "class-lab,active,2026-09-14T06:00:00.000Z,Math Lab - Ramos,,course-m4,LAB,scheduled,Room 3,org-school-7,term-2026,Math,,5"
    ],
    "users.csv": [
        f"{sid},active,2026-09-14T06:00:00.000Z,true,{sid},,{given},{family},,{sid.upper()},,,,,,,org-school-7,"
        for sid, given, family in (
            ("stu-2001", "Lea", "Novak"),
            ("stu-2002", "Ravi", "Shah"),
            ("stu-2003", "Zoe", "Martin"),
        )
    ],
    "roles.csv": [
        f"r-{sid},active,2026-09-14T06:00:00.000Z,{sid},primary,student,,,org-school-7"
        for sid in ("stu-2001", "stu-2002", "stu-2003")
    ],
    "enrollments.csv": [
        "e-lab-t,active,2026-09-14T06:00:00.000Z,class-lab,org-school-7,t-ramos,teacher,true,,",
        *(
            f"e-lab-{sid},active,2026-09-14T06:00:00.000Z,class-lab,org-school-7,{sid},student,false,2026-09-14,"
            for sid in ("stu-2001", "stu-2002", "stu-2003")
        ),
    ],
}


def with_new_class() -> bytes:
    """The school's bundle with :data:`NEW_CLASS` in it."""
    files = {}
    for path in sorted(SCHOOL.glob("*.csv")):
        added = "".join(row + "\r\n" for row in NEW_CLASS.get(path.name, ()))
        files[path.name] = path.read_bytes() + added.encode()
    return zipped(files)


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


def test_classes_are_listed_a_page_at_a_time(rostered) -> None:
    api, _ = rostered
    first = api.client.get("/v1/classes", params={"limit": 1}, headers=api.h()).json()
    assert first["total"] == 2 and [c["class_id"] for c in first["classes"]] == ["class-4a"]
    assert first["next"] == "class-4a"
    second = api.client.get("/v1/classes", params={"limit": 1, "after": first["next"]}, headers=api.h()).json()
    assert [c["class_id"] for c in second["classes"]] == ["class-5b"] and second["next"] is None
    whole = api.client.get("/v1/classes", headers=api.h()).json()
    assert [c["class_id"] for c in whole["classes"]] == ["class-4a", "class-5b"] and whole["next"] is None
    past = api.client.get("/v1/classes", params={"after": "class-5b"}, headers=api.h()).json()
    assert past == {"total": 2, "classes": [], "next": None}
    assert api.client.get("/v1/classes", params={"limit": 0}, headers=api.h()).status_code == 422


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
    assert api.client.get("/v1/classes", headers=api.h("b_all")).json() == {"total": 0, "classes": [], "next": None}
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


def test_a_rostered_student_keeps_no_state_until_the_first_answer(rostered) -> None:
    """A district's import gives every student a grade before any answer: the record keeps the
    grade, not the state it implies (drawn again on read), until there is evidence."""
    api, _ = rostered
    record = api.store.get("tenant-a", "stu-1010")
    assert record.meta["grade"] == "4" and record.event_count == 0 and record.state == b""
    before = api.client.get("/v1/learners/stu-1010/profile", headers=api.h()).json()
    assert before["grade"] == "4" and before["events"] == 0
    nxt = api.client.get("/v1/learners/stu-1010/next", headers=api.h()).json()["recommendations"]
    unseen = api.client.get("/v1/learners/nobody-yet/next?grade=4", headers=api.h()).json()["recommendations"]
    assert [r["standard"] for r in nxt] == [r["standard"] for r in unseen]  # the grade's starting belief
    item = nxt[0]["item"]["id"]
    event = {
        "id": "first",
        "learner_id": "stu-1010",
        "item_id": item,
        "correct": True,
        "timestamp": "2026-12-01T10:00:00Z",
    }
    assert api.client.post("/v1/events", json=[event], headers=api.h()).status_code == 200
    assert len(api.store.get("tenant-a", "stu-1010").state) > 1000


def test_deleting_a_learner_erases_the_roster_entry(rostered) -> None:
    api, _ = rostered
    assert api.client.delete("/v1/learners/stu-1001", headers=api.h()).status_code == 200
    members = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
    assert "stu-1001" not in [m["learner_id"] for m in members] and len(members) == 15
    assert "Okafor" not in json.dumps(list(api.store.roster_changes("tenant-a", 0).written))


def test_students_who_left_are_erased_in_one_request(rostered) -> None:
    """The end of a year: many students erased at once, with one rewrite of the roster."""
    api, _ = rostered
    before = api.store.roster_version("tenant-a")
    leaving = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
    ids = [m["learner_id"] for m in leaving if m["role"] == "student"][:5]
    r = api.client.post("/v1/erasures", json={"learner_ids": [*ids, "nobody-here"]}, headers=api.h())
    assert r.status_code == 200 and r.json() == {"erased": ids, "unknown": ["nobody-here"]}
    assert api.store.roster_version("tenant-a") == before + 1  # one write for all of them
    members = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
    assert not set(ids) & {m["learner_id"] for m in members} and len(members) == 16 - 5
    assert all(api.store.get("tenant-a", i) is None for i in ids)
    teacher = api.client.post("/v1/erasures", json={"learner_ids": ids}, headers=api.h("a_teacher"))
    assert teacher.status_code == 403
    assert api.client.post("/v1/erasures", json={"learner_ids": []}, headers=api.h()).status_code == 422


def test_erased_roster_entries_leave_no_byte(rostered, request) -> None:
    """A student with a record, a teacher the store knows only from the roster: after their
    erasure (one at a time, and in one request), neither their ids nor their names are anywhere
    in the store's files (a class title that names the teacher is the school's, and stays)."""
    from .conftest import files_after_erasure

    api, _ = rostered
    erased: dict[str, str] = {}
    users = (SCHOOL / "users.csv").read_text(encoding="utf-8-sig").splitlines()
    for line in users[1:]:
        cells = line.split(",")
        if cells[0] in ("stu-1001", "t-chen", "stu-1003", "stu-1004"):
            erased[cells[0]] = cells[6] + " " + cells[7]  # given and family name, as the roster keeps them
    store = api.store

    def traces(user: str, data: bytes) -> list[str]:
        given, family = erased[user].split()
        names = [user, given] if user.startswith("t-") else [user, given, family]
        return [name for name in names if name.encode() in data]

    assert len(erased) == 4
    assert api.client.delete("/v1/learners/t-chen", headers=api.h()).status_code == 200  # rostered only
    assert traces("t-chen", files_after_erasure(request, store)) == []
    assert api.client.delete("/v1/learners/stu-1001", headers=api.h()).status_code == 200
    r = api.client.post("/v1/erasures", json={"learner_ids": ["stu-1003", "stu-1004"]}, headers=api.h())
    assert r.json() == {"erased": ["stu-1003", "stu-1004"], "unknown": []}
    data = files_after_erasure(request, store)
    assert {user: traces(user, data) for user in erased} == dict.fromkeys(erased, [])
    assert b"Ramos" in data and b"stu-1000" in data  # the check sees what is there


def test_every_worker_follows_the_roster_by_what_changed(rostered) -> None:
    """Another worker's copy of the roster: after an erasure and a delta import it reads only the
    records that changed, and its copy (data and membership) is the roster as stored."""
    from engine.roster import Roster
    from serving.rosters import RosterStore

    api, _ = rostered
    other = RosterStore(api.store)
    first = other.current("tenant-a")
    reads: list[tuple[int, bool, int]] = []
    changes_of = api.store.roster_changes

    def counted(tenant: str, since: int, pace=None):
        found = changes_of(tenant, since, pace)
        reads.append((since, found.full, len(found.written) + len(found.removed)))
        return found

    api.store.roster_changes = counted
    try:
        assert api.client.post("/v1/erasures", json={"learner_ids": ["stu-1002", "t-ramos"]}, headers=api.h()).json()[
            "erased"
        ] == ["stu-1002", "t-ramos"]
        delta = {  # a student moves class
            "manifest.csv": "propertyName,value\nfile.enrollments,delta\n",
            "enrollments.csv": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role\n"
            "e-0,tobedeleted,2026-09-01,class-4a,org-school-7,stu-1000,student\n"
            "e-0-moved,active,2026-09-01,class-5b,org-school-7,stu-1000,student\n",
        }
        moved = api.client.post("/v1/rosters", content=zipped(delta), headers={**api.h(), **ZIP})
        assert moved.json()["changes"]["enrollments"] == {"added": 1, "updated": 0, "removed": 1}
        now = other.current("tenant-a")
    finally:
        api.store.roster_changes = changes_of
    assert now.version > first.version and reads[-1][:2] == (first.version, False)
    stored = Roster.from_records((k, i, r) for _, k, i, r in api.store.roster_changes("tenant-a", 0).written)
    assert now.roster.to_json() == stored.to_json()
    for class_id in stored.classes:
        assert now.roster.members(class_id) == stored.members(class_id)
        assert now.roster.members(class_id, "student") == stored.members(class_id, "student")
    for user in stored.users:
        assert now.roster.classes_of(user) == stored.classes_of(user)
        assert now.roster.students_of(user) == stored.students_of(user)
    assert "stu-1002" not in now.roster.users and not now.roster.classes_of("t-ramos")
    assert now.roster.classes_of("stu-1000") == ["class-5b"]


def test_a_large_change_is_written_in_steps_whose_references_hold(any_api, monkeypatch) -> None:
    """An import is written a few records a version (a district's would hold the store for
    seconds in one): removals first, then writes, so at every version between, each enrollment
    names a user and a class the roster has."""
    from engine.roster import Roster

    api = any_api
    monkeypatch.setattr(api.store, "roster_step", 4)
    store, write = api.store, api.store.write_roster
    seen: list[int] = []

    def checked(tenant, expected, written, removed):
        version = write(tenant, expected, written, removed)
        roster = Roster.from_records((k, i, r) for _, k, i, r in store.roster_changes(tenant, 0).written)
        for key, e in roster.enrollments.items():
            assert e["user"] in roster.users and e["class"] in roster.classes, (version, key)
        seen.append(version)
        return version

    monkeypatch.setattr(store, "write_roster", checked)
    assert api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ZIP}).status_code == 200
    assert len(seen) > 10 and seen == list(range(1, len(seen) + 1))
    moving = [
        line.split(",")[5] for line in (SCHOOL / "enrollments.csv").read_text().splitlines() if ",class-4a," in line
    ]
    moving = [user for user in moving if user.startswith("stu-")]
    next_year = {  # class 4a gone (its enrollments with it), a new class
        "manifest.csv": "propertyName,value\nfile.classes,delta\nfile.enrollments,delta\n",
        "classes.csv": "sourcedId,status,title,schoolSourcedId,classType\n"
        "class-4a,tobedeleted,Grade 4 Math - Ramos,org-school-7,scheduled\n"
        "class-6c,active,Grade 6 Math - Ramos,org-school-7,scheduled\n",
        "enrollments.csv": "sourcedId,status,classSourcedId,schoolSourcedId,userSourcedId,role\n"
        + "".join(f"e6-{user},active,class-6c,org-school-7,{user},student\n" for user in moving),
    }
    r = api.client.post("/v1/rosters", content=zipped(next_year), headers={**api.h(), **ZIP})
    assert r.status_code == 200, r.text
    assert r.json()["changes"]["classes"] == {"added": 1, "updated": 0, "removed": 1}
    classes = api.client.get("/v1/classes", headers=api.h()).json()["classes"]
    assert [(c["class_id"], c["students"]) for c in classes] == [("class-5b", 15), ("class-6c", len(moving))]
    assert len(moving) >= 10


def test_a_change_in_steps_leaves_the_store_its_share_between_them(store, monkeypatch) -> None:
    """Between two steps of a long change the writer waits, so that the steps take at most the
    store's ``bulk_share`` of its time (Redis answers the API's reads between them); none after the
    last. Redis's steps are smaller than SQLite's and share half its time."""
    import serving.pacing
    from engine.roster import Roster, load_bundle
    from serving.rosters import RosterStore

    if store.url.startswith("redis"):
        assert (store.roster_step, store.bulk_share) == (500, 0.5)
    else:
        assert (store.roster_step, store.bulk_share) == (5000, 1.0)
    clock = [0.0]
    slept: list[float] = []
    lengths: list[int] = []
    write = store.write_roster

    def timed(tenant, expected, written, removed):
        clock[0] += 0.004 * (len(written) + len(removed))  # a step's time, by its size
        lengths.append(len(written) + len(removed))
        return write(tenant, expected, written, removed)

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

        @staticmethod
        def sleep(seconds: float) -> None:
            slept.append(round(seconds, 6))

    monkeypatch.setattr(serving.pacing, "time", Clock)
    monkeypatch.setattr(store, "write_roster", timed)
    monkeypatch.setattr(store, "roster_step", 10)
    monkeypatch.setattr(store, "bulk_share", 0.25)  # the steps take a quarter: three times as long between
    rosters = RosterStore(store)
    rosters.update("t", lambda roster: Roster().apply(load_bundle(SCHOOL), "t"))
    assert len(lengths) > 3 and max(lengths) == 10
    assert slept == [round(0.012 * n, 6) for n in lengths[:-1]]

    monkeypatch.setattr(store, "bulk_share", 1.0)
    slept.clear()
    rosters.update("t", lambda roster: Roster())  # every record removed, in steps: no wait
    assert slept == []


def test_a_whole_roster_read_is_kept_out_of_the_collectors_passes(store, monkeypatch) -> None:
    """A worker's copy of a district's roster is millions of objects: after a whole read they are
    frozen out of the garbage collector's generations (its first pass over them stopped a worker's
    event loop for 0.3 s), and the memory of the pages read is given back to the system; a read
    of what changed does neither."""
    import gc

    import serving.rosters
    from engine.roster import Roster, load_bundle
    from serving.rosters import RosterStore

    given_back: list[int] = []
    monkeypatch.setattr(serving.rosters, "_free_memory_back", lambda: given_back.append(1))
    RosterStore(store).update("t", lambda roster: Roster().apply(load_bundle(SCHOOL), "t"))
    gc.unfreeze()
    given_back.clear()
    reader = RosterStore(store)
    try:
        copy = reader.current("t")
        by_class, _ = copy.roster._enrollment_index()
        assert gc.get_freeze_count() > 0 and gc.is_tracked(by_class["class-4a"])  # a tuple: the collector's to scan
        assert given_back == [1]
        RosterStore(store).update("t", lambda roster: roster.with_changes([("users", "new", {"role": "student"})], []))
        gc.unfreeze()
        given_back.clear()
        reader.current("t")  # what changed: nothing frozen
        assert gc.get_freeze_count() == 0 and given_back == []
    finally:
        gc.unfreeze()


def test_one_tenants_roster_read_does_not_hold_anothers(store, monkeypatch) -> None:
    """A worker reads rosters at start, a district's for seconds: a request for another tenant's
    roster meanwhile reads that one at once. The collector, paused while either read runs, is on
    again once both have ended."""
    import gc
    import threading

    from engine.roster import Roster, load_bundle
    from serving.rosters import RosterStore

    for tenant in ("slow", "quick"):
        RosterStore(store).update(tenant, lambda roster, t=tenant: Roster().apply(load_bundle(SCHOOL), t))
    reading, release = threading.Event(), threading.Event()
    changes = store.roster_changes

    def held(tenant, since, pace=None):
        if tenant == "slow":
            reading.set()
            assert release.wait(30)
        return changes(tenant, since, pace)

    monkeypatch.setattr(store, "roster_changes", held)
    rosters = RosterStore(store)
    assert gc.isenabled()
    slow = threading.Thread(target=rosters.current, args=("slow",))
    slow.start()
    try:
        assert reading.wait(30)
        assert sorted(rosters.get("quick").classes) == ["class-4a", "class-5b"]  # not behind "slow"
        assert not gc.isenabled()  # "slow" is still being read
    finally:
        release.set()
        slow.join(30)
        gc.unfreeze()
    assert gc.isenabled() and "slow" in rosters._cache


def test_a_replaced_copy_is_taken_apart_only_once_nothing_else_holds_it(store) -> None:
    """A worker's replaced copy of a roster is taken apart piece by piece in a thread of its own
    (freeing a district's at once stopped every request for 96 ms). A request still reading the
    old copy reads it whole; what the new copy shares with it (the kinds that did not change) is
    left as it is; once the request lets go, the old copy's own pieces are taken apart."""
    import time

    from engine.roster import Roster, load_bundle
    from serving.rosters import RosterStore, _retired

    def stored() -> dict:
        return Roster.from_records((k, i, r) for _, k, i, r in store.roster_changes("t", 0).written).to_json()

    writer, reader = RosterStore(store), RosterStore(store)
    writer.update("t", lambda roster: Roster().apply(load_bundle(SCHOOL), "t"))
    held = reader.get("t")  # a request reading the first copy
    seen = held.to_json()
    members = {c: held.members(c) for c in held.classes}
    student = held.members("class-4a", "student")[0]
    moved = {"class": "class-5b", "user": student, "role": "student", "primary": False}
    writer.update("t", lambda roster: roster.with_changes([("enrollments", "moved", moved)], []))
    assert _retired.settle()
    freed = _retired.freed
    second = reader.current("t")  # what changed: the first copy is replaced
    assert _retired.settle()
    assert held.to_json() == seen and {c: held.members(c) for c in held.classes} == members  # still whole
    assert second.roster.to_json() == stored() and student in second.roster.members("class-5b")
    del held
    deadline = time.monotonic() + 10
    while _retired.freed == freed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _retired.freed > freed  # let go: taken apart (its enrollments and their index)
    assert second.roster.to_json() == stored()  # what the copies shared is untouched
    assert second.roster.members("class-5b") == sorted({*members["class-5b"], student})

    writer.update("t", lambda roster: roster.with_changes([("users", "new", {"role": "student"})], []))
    third = reader.current("t")
    assert _retired.settle()
    assert third.roster.to_json() == stored() and "new" in third.roster.users
    assert third.roster.members("class-5b") == sorted({*members["class-5b"], student})


def test_what_two_replaced_copies_shared_is_taken_apart_once_neither_is_held() -> None:
    """Two copies put one after the other share the records of a kind the first change left alone:
    once no copy holds them, they are taken apart at once, not after the wait for pieces held
    elsewhere (60 s)."""
    import gc
    import time
    import weakref

    from engine.roster import Roster
    from serving.rosters import CachedRoster, RecordNumbers, _Retired

    class Marker:
        """Something a record holds, whose end a weak reference sees."""

    retired = _Retired(wait_s=60.0, poll_s=0.02)
    marker = Marker()
    seen = weakref.ref(marker)
    first = Roster(users={"u1": {"role": "student", "note": marker}})  # an unusual record: kept as a dict
    del marker
    second = first.with_changes([("classes", "c1", {"title": "C"})], [])  # shares the users
    third = second.with_changes([("users", "u1", {"role": "student"})], [])  # users of its own
    numbers = RecordNumbers.build([], [], [])
    retired.put(CachedRoster(1, first, numbers), 1.0)
    retired.put(CachedRoster(2, second, numbers), 1.0)
    del first, second
    gc.collect()
    deadline = time.monotonic() + 5
    while seen() is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen() is None and third.users["u1"] == {"role": "student"}


def test_copies_read_while_replaced_copies_are_taken_apart_stay_whole(store) -> None:
    """Requests read each copy they got (records, membership) while a writer changes the roster
    and a worker replaces its copy after each change: every read of a copy gives what it gave
    first, however the copies before it are being taken apart."""
    import threading
    import time

    from engine.roster import Roster, load_bundle
    from serving.rosters import RosterStore, _retired

    writer, reader = RosterStore(store), RosterStore(store)
    writer.update("t", lambda roster: Roster().apply(load_bundle(SCHOOL), "t"))
    done, failures = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            roster = reader.get("t")
            try:
                first = (roster.to_json(), [roster.members(c) for c in sorted(roster.classes)])
                time.sleep(0.005)  # held while the worker moves on (and the writer gets the interpreter)
                again = (roster.to_json(), [roster.members(c) for c in sorted(roster.classes)])
                assert first == again
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for n in range(30):
            record = {
                "class": "class-4a" if n % 2 else "class-5b",
                "user": "stu-1000",
                "role": "student",
                "primary": False,
            }
            writer.update(
                "t",
                lambda roster, n=n, record=record: roster.with_changes(
                    [("enrollments", f"e{n}", record), ("users", f"u{n}", {"role": "student"})],
                    [("enrollments", f"e{n - 1}")] if n else [],
                ),
            )
            reader.current("t")
    finally:
        done.set()
        for thread in readers:
            thread.join(30)
    assert _retired.settle()
    assert failures == []
    last = reader.get("t")
    assert (
        last.to_json()
        == Roster.from_records((k, i, r) for _, k, i, r in store.roster_changes("t", 0).written).to_json()
    )
    assert "u29" in last.users and "stu-1000" in last.members("class-4a") and len(last.members("class-5b")) == 16


def test_memory_given_back_after_a_whole_read_is_the_allocators() -> None:
    """Where the C library is glibc, its free memory goes back to the system; elsewhere the call
    does nothing (and never fails)."""
    from serving.rosters import _free_memory_back

    _free_memory_back()


def test_a_roster_kept_as_one_document_is_moved_into_records(any_api) -> None:
    """A store written before kept the roster as one JSON setting: it is served, moved into
    records once, and blanked."""
    import orjson

    from engine.roster import Roster, load_bundle
    from serving.rosters import roster_setting

    api = any_api
    roster = Roster().apply(load_bundle(SCHOOL), "tenant-a")
    api.store.put_setting(roster_setting("tenant-a"), orjson.dumps(roster.to_json()).decode())
    listed = api.client.get("/v1/classes", headers=api.h()).json()
    assert [c["students"] for c in listed["classes"]] == [15, 15]
    assert api.store.roster_version("tenant-a") == 1
    assert api.store.get_setting(roster_setting("tenant-a"))[1] == ""
    assert len(api.store.roster_changes("tenant-a", 0).written) == sum(
        roster.counts()[k] for k in ("orgs", "sessions", "users", "classes", "enrollments")
    )
    assert api.client.delete("/v1/learners/stu-1001", headers=api.h()).status_code == 200
    assert api.store.roster_version("tenant-a") == 2


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


def test_the_roster_import_command(tmp_path, shared_engine) -> None:
    from zpd.cli import app

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    runner = CliRunner()
    first = runner.invoke(app, ["roster", "import", str(SCHOOL), "--tenant", "school", "--store", url, "--json"])
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert (result["counts"]["users"], result["counts"]["classes"], result["counts"]["enrollments"]) == (32, 2, 32)
    second = runner.invoke(app, ["roster", "import", str(SCHOOL), "--tenant", "school", "--store", url])
    assert second.exit_code == 0 and "org(s); (no change); grade set for 0 student(s)" in second.stdout
    missing = runner.invoke(app, ["roster", "import", str(tmp_path / "none"), "--tenant", "school", "--store", url])
    assert missing.exit_code == 1 and "not found" in missing.output
    no_users = tmp_path / "no_users"
    no_users.mkdir()
    for path in SCHOOL.glob("*.csv"):
        if path.name != "users.csv":
            (no_users / path.name).write_bytes(path.read_bytes())
    bad = runner.invoke(app, ["roster", "import", str(no_users), "--tenant", "school", "--store", url])
    assert bad.exit_code == 1 and f"{no_users}/manifest.csv: names users.csv" in bad.output

    # each import is a job of the tenant's, as an upload to the API is: listed with them, the
    # failed one saying why, and its upload gone from the store
    from serving.imports import RosterImports, part_setting
    from serving.service import LearnerService
    from serving.stores import open_store

    store = open_store(url)
    try:
        service = LearnerService(shared_engine, store)
        imports = RosterImports(service.import_roster, store, service.erase_noted)
        listing = imports.listing("school")
        assert [job["status"] for job in listing] == ["failed", "done", "done"]
        assert listing[0]["error"]["code"] == "invalid_roster" and "names users.csv" in listing[0]["error"]["message"]
        assert listing[2]["result"] == json.loads(first.stdout)  # the first import, as the command printed it
        assert all(store.get_setting(part_setting("school", job["import_id"], 0)) is None for job in listing)
        # an upload a server accepted and has not run yet goes first: the command runs it, then its own
        drop_4a = tmp_path / "drop_4a"
        drop_4a.mkdir()
        (drop_4a / "manifest.csv").write_text("propertyName,value\nfile.classes,delta\n")
        (drop_4a / "classes.csv").write_text(
            "sourcedId,status,title,schoolSourcedId,classType\nclass-4a,tobedeleted,Grade 4 Math,org-school-7,scheduled\n"
        )
        imports.accept("school", bundle_zip())
        later = runner.invoke(app, ["roster", "import", str(drop_4a), "--tenant", "school", "--store", url])
        assert later.exit_code == 0, later.output
        assert sorted(service.roster("school").classes) == ["class-5b"]  # the delta after the bulk file
        assert [job["status"] for job in imports.listing("school")] == ["done", "done", "failed", "done", "done"]
    finally:
        store.close()


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
    # nor a void of another class's student's statement (sent by her student's account, say)
    answer = {
        "id": "0b3c9d1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
        "actor": {"account": {"homePage": "https://lms.example", "name": "stu-1020"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": item},
        "result": {"success": False},
    }
    assert api.client.post("/v1/events", json=answer, headers=api.h()).status_code == 200
    void = {
        "id": "1c4d0e2f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
        "actor": {"account": {"homePage": "https://lms.example", "name": "stu-1000"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": answer["id"]},
    }
    refused = api.client.post("/v1/events", json=void, headers=ramos)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_event"
    assert [e.kind for e in api.store.events("tenant-a", "stu-1020")] == ["answer"]
    # nor a void held for an event not received yet: whose it will be, nobody knows
    early = {**void, "id": "2d5e1f3a-7b8c-4d9e-8f0a-2b3c4d5e6f70"}
    early["object"] = {"objectType": "StatementRef", "id": "3e6f2a4b-8c9d-4e0f-9a1b-3c4d5e6f7a81"}
    refused = api.client.post("/v1/events", json=early, headers=ramos)
    assert refused.status_code == 404 and "not been received" in refused.json()["error"]["message"]
    assert api.store.event_owners("tenant-a", [early["object"]["id"], early["id"]]) == {}
    assert api.client.post("/v1/events", json=void, headers=api.h()).json()["accepted"] == 1
    # a void of her own student's statement, sent by her LMS under her own account (the actor of a
    # voiding statement is whoever voids it): her key may send it, the target decides
    mine = {**answer, "id": "4f7a3b5c-9d0e-4f1a-8b2c-4d5e6f7a8b92"}
    mine["actor"] = {"account": {"homePage": "https://lms.example", "name": "stu-1000"}}
    assert api.client.post("/v1/events", json=mine, headers=ramos).status_code == 200
    hers = {
        **void,
        "id": "5a8b4c6d-0e1f-4a2b-9c3d-5e6f7a8b9ca3",
        "actor": {"account": {"homePage": "https://lms.example", "name": "t-ramos"}},
        "object": {"objectType": "StatementRef", "id": mine["id"]},
    }
    voided = api.client.post("/v1/events", json=hers, headers=ramos)
    assert voided.status_code == 200 and voided.json()["accepted"] == 1, voided.text
    assert [e.kind for e in api.store.events("tenant-a", "stu-1000")][-2:] == ["answer", "void"]
    assert api.store.get("tenant-a", "t-ramos") is None  # the voiding actor is no learner


_NUMBERED = st.tuples(
    st.integers(1, 60), st.sampled_from(["users", "classes", "enrollments"]), st.sampled_from("abcdefgh")
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_NUMBERED, unique_by=lambda r: r[0], max_size=20),
    st.lists(
        st.tuples(
            st.lists(st.integers(1, 70), unique=True, max_size=5),
            st.lists(_NUMBERED, unique_by=lambda r: r[0], max_size=5),
        ),
        max_size=4,
    ),
)
def test_record_numbers_name_what_a_dict_of_them_names(first, changes) -> None:
    """A worker's copy names each record's number in sorted arrays; after any changes, they name
    what a plain dict of number -> (kind, id) names, and the removed numbers name what it named."""
    numbers = RecordNumbers.build(
        [n for n, _, _ in first], [list(KINDS).index(k) for _, k, _ in first], [i for *_, i in first]
    )
    model = {n: (kind, key) for n, kind, key in first}
    for removed, written in changes:
        removed = [n for n in removed if n not in {w[0] for w in written}]
        numbers, named = numbers.changed(removed, written)
        assert named == [model.pop(n) for n in removed if n in model]
        model.update((n, (kind, key)) for n, kind, key in written)
        assert numbers.named() == model and len(numbers) == len(model)
