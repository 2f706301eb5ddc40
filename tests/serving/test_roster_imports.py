"""Roster uploads as jobs (serving.imports): the upload is kept before it is acknowledged, any
worker finishes an import whose worker stopped, a tenant's imports apply in the order they were
sent, a failing import is tried again and then says why, and nothing of an upload stays in the
store once its import is over."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest

from serving.imports import ATTEMPTS, LEASE_S, RosterImports, job_setting, part_setting
from serving.stores.base import StoreUnavailable

from .conftest import files_after_erasure
from .test_rosters import SCHOOL, ZIP, bundle_zip, zipped

ASYNC = {**ZIP, "prefer": "respond-async"}


def follow(api, location: str, timeout: float = 60) -> dict[str, Any]:
    """Poll an import until it is over, as a client would."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.client.get(location, headers=api.h())
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def no_upload_left(store, tenant: str, job_id: str, timeout: float = 10) -> bool:
    """The upload's parts are gone (deleted right after the job's outcome is written)."""
    deadline = time.monotonic() + timeout
    while store.get_setting(part_setting(tenant, job_id, 0)) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_import_sent_to_respond_async_is_followed_to_its_result(any_api) -> None:
    api = any_api
    r = api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ASYNC})
    assert r.status_code == 202, r.text
    assert r.headers["preference-applied"] == "respond-async" and r.headers["retry-after"] == "2"
    accepted = r.json()
    assert r.headers["location"] == f"/v1/rosters/imports/{accepted['import_id']}"
    assert accepted["status"] in ("queued", "running", "done") and accepted["bytes"] == len(bundle_zip())
    job = follow(api, r.headers["location"])
    assert job["status"] == "done" and job["error"] is None and job["progress"] is None, job
    assert job["result"]["counts"]["students"] == 30 and job["result"]["grades_set"] == 30
    assert job["result"]["import_id"] == accepted["import_id"]
    assert job["submitted"] <= job["started"] <= job["finished"] and job["attempts"] == 1
    classes = api.client.get("/v1/classes", headers=api.h()).json()
    assert [c["students"] for c in classes["classes"]] == [15, 15]
    assert no_upload_left(api.store, "tenant-a", accepted["import_id"])

    # the same bundle, waited for: the answer is the result, as before imports were jobs
    again = api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ZIP})
    assert again.status_code == 200 and again.json()["grades_set"] == 0
    listed = api.client.get("/v1/rosters/imports", headers=api.h()).json()["imports"]
    assert [j["import_id"] for j in listed] == [again.json()["import_id"], accepted["import_id"]]
    # another tenant's admin does not reach it, even with its id
    other = api.client.get(r.headers["location"], headers=api.h("b_all"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "unknown_import"
    assert api.client.get("/v1/rosters/imports", headers=api.h("b_all")).json() == {"imports": []}
    assert api.client.get(r.headers["location"], headers=api.h("a_teacher")).status_code == 403
    scraped = api.client.get("/metrics").text
    assert 'zpd_roster_imports_total{outcome="done"} 2.0' in scraped
    assert 'zpd_roster_import_seconds_count{outcome="done"} 2.0' in scraped


def test_a_bad_bundle_fails_its_import_and_says_why(api) -> None:
    no_users = zipped({p.name: p.read_bytes() for p in sorted(SCHOOL.glob("*.csv")) if p.name != "users.csv"})
    waited = api.client.post("/v1/rosters", content=no_users, headers={**api.h(), **ZIP})
    assert waited.status_code == 422 and "users.csv" in waited.json()["error"]["message"], waited.text
    r = api.client.post("/v1/rosters", content=no_users, headers={**api.h(), **ZIP, "prefer": "wait=0"})
    assert r.status_code == 202 and "preference-applied" not in r.headers
    job = follow(api, r.headers["location"])
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["code"] == "invalid_roster" and job["error"]["message"] == waited.json()["error"]["message"]
    assert job["attempts"] == 1  # a bundle that cannot be read is not tried again
    assert 'zpd_roster_imports_total{outcome="failed"} 2.0' in api.client.get("/metrics").text
    assert no_upload_left(api.store, "tenant-a", job["import_id"])


def test_a_roster_upload_has_a_limit_of_its_own(tmp_path, shared_engine) -> None:
    from configs import load_config
    from serving.stores import open_store

    from .conftest import make_api

    body = bundle_zip()
    config = load_config(env={})
    limits = {"max_body_bytes": 1024, "max_roster_bytes": len(body) + 10}
    config = config.model_copy(update={"serving": config.serving.model_copy(update=limits)})
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    api = make_api(store, shared_engine, config)
    with api.client:
        assert api.client.post("/v1/rosters", content=body, headers={**api.h(), **ZIP}).status_code == 200
        events = [{"id": f"e{i}", "learner_id": "ana", "item_id": "x", "correct": True} for i in range(40)]
        r = api.client.post("/v1/events", json=events, headers=api.h())
        assert r.status_code == 413 and "smaller batches" in r.json()["error"]["message"]
        r = api.client.post("/v1/rosters", content=body + b"x" * 20, headers={**api.h(), **ZIP})
        assert r.status_code == 413 and "with the CLI" in r.json()["error"]["message"]
        # the roster page's form gets a page, with the pages' headers, not the API's JSON
        r = api.client.post("/ui/roster", files={"bundle": ("district.zip", body + b"x" * 20, "application/zip")})
        assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
        assert "zpd roster import" in r.text and 'href="/ui/roster"' in r.text
        assert r.headers["x-frame-options"] == "DENY" and "default-src 'self'" in r.headers["content-security-policy"]
    store.close()


# ---------------------------------------------------------------------------- workers
@pytest.fixture(params=["sqlite", "redis"])
def service(request, tmp_path, shared_engine):
    from serving.service import LearnerService
    from serving.stores import open_store

    from .conftest import store_url

    store = open_store(store_url(request, tmp_path, request.param))
    yield LearnerService(shared_engine, store)
    store.close()


def test_an_import_whose_worker_stopped_is_finished_by_another(service, request) -> None:
    store = service.store
    stopped = RosterImports(service.import_roster, store, service.erase_noted)
    job_id = stopped.accept("t1", bundle_zip())
    assert stopped._claim("t1", job_id) is not None  # ...and its worker died right there
    other = RosterImports(service.import_roster, store, service.erase_noted)
    other.poll()  # its lease holds: left alone
    other.wait()
    assert other.get("t1", job_id)["status"] == "running" and store.roster_version("t1") == 0
    later = RosterImports(service.import_roster, store, service.erase_noted, clock=lambda: time.time() + LEASE_S + 1)
    later.poll()
    later.wait()
    job = later.get("t1", job_id)
    assert job["status"] == "done" and job["attempts"] == 2, job
    assert service.roster("t1").counts()["students"] == 30
    assert no_upload_left(store, "t1", job_id)

    # an upload cut off while it was being stored: never acknowledged, and forgotten
    cut = RosterImports(service.import_roster, store, service.erase_noted)
    cut._write(
        {
            "id": "c0ffee",
            "tenant": "t1",
            "status": "storing",
            "submitted": time.time(),
            "bytes": 9,
            "parts": 2,
            "attempts": 0,
            "owner": cut.owner,
            "lease_until": time.time() + LEASE_S,
        }
    )
    cut._change("roster-imports", lambda queue: [*queue, ["t1", "c0ffee"]])
    store.put_setting(part_setting("t1", "c0ffee", 0), "Zebulon-qx7")
    other.poll()
    assert store.get_setting(part_setting("t1", "c0ffee", 0)) is not None  # its lease holds
    RosterImports(service.import_roster, store, service.erase_noted, clock=lambda: time.time() + LEASE_S + 1).poll()
    assert store.get_setting(part_setting("t1", "c0ffee", 0)) is None
    assert store.get_setting(job_setting("t1", "c0ffee")) is None
    assert store.get_setting("roster-imports")[1] == "[]"
    assert b"qx7" not in files_after_erasure(request, store)

    # a worker that wrote an import's outcome and stopped before deleting its upload
    over = RosterImports(service.import_roster, store, service.erase_noted)
    done_id = over.accept("t1", bundle_zip())
    got = over._read("t1", done_id)
    over._write({**got[1], "status": "done", "result": {}}, got[0])
    next_id = over.accept("t1", bundle_zip())
    over.start("t1")
    over.wait()
    assert over.get("t1", next_id)["status"] == "done"  # the ended one does not hold the next back
    assert store.get_setting(part_setting("t1", done_id, 0)) is not None
    over.poll()
    assert store.get_setting(part_setting("t1", done_id, 0)) is None
    assert store.get_setting("roster-imports")[1] == "[]"


def test_a_tenants_imports_apply_in_the_order_they_were_accepted(service) -> None:
    ran: list[tuple[str, str]] = []

    def run(tenant, bundle, progress):
        ran.append((tenant, bundle.modes.get("classes", "bulk")))
        return service.import_roster(tenant, bundle, progress)

    imports = RosterImports(run, service.store, service.erase_noted)
    drop_4a = zipped(
        {
            "manifest.csv": "propertyName,value\nfile.classes,delta\n",
            "classes.csv": "sourcedId,status,title,schoolSourcedId,classType\n"
            "class-4a,tobedeleted,Grade 4 Math - Ramos,org-school-7,scheduled\n",
        }
    )
    first = imports.accept("t1", bundle_zip())
    second = imports.accept("t1", drop_4a)
    third = imports.accept("t2", bundle_zip())
    imports.start("t1")
    imports.start("t2")
    imports.wait()
    assert [imports.get(t, j)["status"] for t, j in (("t1", first), ("t1", second), ("t2", third))] == ["done"] * 3
    assert [mode for t, mode in ran if t == "t1"] == ["bulk", "delta"]
    assert sorted(service.roster("t1").classes) == ["class-5b"]  # the delta applied after the bulk
    assert sorted(service.roster("t2").classes) == ["class-4a", "class-5b"]


def test_the_worker_brings_its_roster_up_to_date_once_a_tenants_imports_end(any_api) -> None:
    """A district's import runs in a process of its own, so the worker's copy of the roster is
    behind when it ends: the worker reads what changed (paced) then, not on a teacher's next
    request. A worker that holds no copy reads none (a district's is 170 MB)."""
    api = any_api
    service, imports = api.client.app.state.service, api.client.app.state.imports
    ended: list[str] = []
    refresh = service.rosters.refresh

    def refreshing(tenant):
        ended.append(tenant)
        refresh(tenant)

    imports.on_drained = refreshing
    imports.run = lambda tenant, bundle, progress: imported_elsewhere(api, tenant, bundle, progress)
    r = api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ASYNC})
    follow(api, r.headers["location"])
    imports.wait()
    assert ended == ["tenant-a"] and "tenant-a" not in service.rosters._cache  # not asked for: not read

    assert api.client.get("/v1/classes", headers=api.h()).status_code == 200  # now this worker holds it
    delta = {
        "manifest.csv": "propertyName,value\nfile.classes,delta\n",
        "classes.csv": "sourcedId,status,title,schoolSourcedId,classType\n"
        "class-6c,active,Grade 6 Math - Ramos,org-school-7,scheduled\n",
    }
    r = api.client.post("/v1/rosters", content=zipped(delta), headers={**api.h(), **ASYNC})
    follow(api, r.headers["location"])
    imports.wait()
    cached = service.rosters._cache["tenant-a"]  # current before any request asked for it
    assert cached.version == api.store.roster_version("tenant-a") and "class-6c" in cached.roster.classes


def imported_elsewhere(api, tenant, bundle, progress):
    """The import as another process runs it: its own service over the same store (this worker's
    copy of the roster is left behind, as after an import in a process of its own)."""
    from serving.service import LearnerService

    return LearnerService(api.client.app.state.engine, api.store).import_roster(tenant, bundle, progress)


def test_a_failing_import_is_tried_again_then_fails_saying_why(service) -> None:
    calls = []

    def flaky(tenant, bundle, progress):
        calls.append(tenant)
        if len(calls) < 2:
            raise StoreUnavailable("the store went away")
        return service.import_roster(tenant, bundle, progress)

    attempts: list[str] = []
    imports = RosterImports(
        flaky, service.store, service.erase_noted, on_attempt=lambda outcome, seconds: attempts.append(outcome)
    )
    job_id = imports.accept("t1", bundle_zip())
    imports.start("t1")
    imports.wait()
    job = imports.get("t1", job_id)
    assert job["status"] == "done" and job["attempts"] == 2 and len(calls) == 2
    assert attempts == ["retried", "done"]

    def broken(tenant, bundle, progress):
        calls.append(tenant)
        raise StoreUnavailable("the store went away")

    calls.clear()
    imports = RosterImports(broken, service.store, service.erase_noted)
    job_id = imports.accept("t1", bundle_zip())
    imports.start("t1")
    imports.wait()
    job = imports.get("t1", job_id)
    assert job["status"] == "failed" and job["attempts"] == ATTEMPTS and len(calls) == ATTEMPTS
    assert job["error"]["code"] == "unavailable" and "the store went away" in job["error"]["message"]
    assert no_upload_left(service.store, "t1", job_id)
    assert service.store.get_setting("roster-imports")[1] == "[]"


def test_a_running_import_shows_its_progress(service) -> None:
    release = threading.Event()

    def slow(tenant, bundle, progress):
        progress("roster", 3, 43)
        release.wait(30)
        return service.import_roster(tenant, bundle, progress)

    imports = RosterImports(slow, service.store, service.erase_noted, lease_s=0.3)
    job_id = imports.accept("t1", bundle_zip())
    imports.start("t1")
    deadline = time.monotonic() + 30
    while (job := imports.get("t1", job_id))["progress"] != {"phase": "roster", "done": 3, "total": 43}:
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job["status"] == "running"
    release.set()
    imports.wait()
    assert imports.get("t1", job_id)["status"] == "done"


def test_an_erased_learner_is_named_by_no_import(any_api, request) -> None:
    """An import's error quotes a row's sourcedId as the file had it, an e-mail address too; once
    that learner is erased, no import record names them, and no byte of it stays in the store."""
    from engine.xapi import account_id

    api = any_api
    files = {p.name: p.read_text() for p in sorted(SCHOOL.glob("*.csv"))}
    users = files["users.csv"].splitlines(keepends=True)
    twice = [line for line in users if line.startswith("stu-1000,")]
    repeated = zipped({**files, "users.csv": "".join(users) + twice[0]})
    ghost = "qx7.kid@school.example"
    enrolled = zipped(
        {
            **files,
            "enrollments.csv": files["enrollments.csv"]
            + f"e-qx7,active,2026-09-01,class-4a,org-school-7,{ghost},student,false,,\n",
        }
    )
    failed = []
    for body in (repeated, enrolled):
        r = api.client.post("/v1/rosters", content=body, headers={**api.h(), **ZIP})
        assert r.status_code == 422, r.text
        failed.append(r.json()["error"]["message"])
    assert "'stu-1000' repeats line" in failed[0] and f"'{ghost}' is no user" in failed[1]
    assert api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ZIP}).status_code == 200

    # never a learner here (the import naming them failed): only their import's record names them
    assert b"qx7" in files_after_erasure(request, api.store)
    api.client.app.state.service.delete_learners("tenant-a", [account_id(ghost, "tenant-a\x1fusers")])
    assert b"qx7" not in files_after_erasure(request, api.store)
    assert api.client.delete("/v1/learners/stu-1000", headers=api.h()).status_code == 200
    listed = api.client.get("/v1/rosters/imports", headers=api.h()).json()["imports"]
    messages = [job["error"]["message"] for job in listed if job["error"]]
    assert len(messages) == 2 and all("'[erased]'" in m for m in messages), messages
    assert messages[1].startswith("body/users.csv line") and "repeats line" in messages[1]
    assert not any("stu-1000" in m or "qx7" in m for m in messages)
    data = files_after_erasure(request, api.store)
    assert b"stu-1001" in data  # the check sees what is there
    assert b"qx7" not in data and b"'stu-1000'" not in data


def test_a_large_upload_is_imported_in_a_process_of_its_own(tmp_path, shared_engine) -> None:
    """Past ``roster_apart_bytes`` an import runs in a spawned process (the worker's own import
    function is never called): same result, same failures, named as the file was sent."""
    from configs import load_config
    from serving.service import LearnerService
    from serving.stores import open_store

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    service = LearnerService(shared_engine, store)

    def not_here(tenant, bundle, progress):
        raise AssertionError("imported in the worker")

    imports = RosterImports(
        not_here, store, service.erase_noted, apart=(load_config(env={}).model_dump_json(), store.url), apart_bytes=0
    )
    job_id = imports.submit("t1", bundle_zip(), "export.zip")
    no_users = zipped({p.name: p.read_bytes() for p in sorted(SCHOOL.glob("*.csv")) if p.name != "users.csv"})
    bad_id = imports.submit("t1", no_users, "export.zip")
    imports.wait(120)
    job = imports.get("t1", job_id)
    assert job["status"] == "done" and job["attempts"] == 1, job
    assert job["result"]["counts"]["students"] == 30 and job["result"]["grades_set"] == 30
    assert service.roster("t1").counts()["students"] == 30
    assert store.get("t1", "stu-1000").meta["grade"] == "4"
    bad = imports.get("t1", bad_id)
    assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_roster", bad
    assert bad["error"]["message"].startswith("export.zip/") and "users.csv" in bad["error"]["message"]
    assert no_upload_left(store, "t1", job_id) and no_upload_left(store, "t1", bad_id)
    store.close()


@pytest.mark.parametrize("when", ["queued", "before its writes", "after its writes"])
def test_an_erasure_while_an_import_is_open_is_not_undone_by_it(service, when) -> None:
    """A student erased while an upload that names them waits or runs: the import does not bring
    them back (their roster record, their enrollments, a learner record with their grade), and
    its record says so without naming them."""
    started, release = threading.Event(), threading.Event()

    def slow(tenant, bundle, progress):
        if when == "before its writes":
            started.set()
            release.wait(30)
        result = service.import_roster(tenant, bundle, progress)
        if when == "after its writes":
            started.set()
            release.wait(30)
        return result

    imports = RosterImports(slow, service.store, service.erase_noted)
    job_id = imports.accept("t1", bundle_zip())
    try:
        if when != "queued":
            imports.start("t1")
            assert started.wait(30)
        erased = service.delete_learners("t1", ["stu-1000"])
    finally:
        release.set()
    assert erased == (["stu-1000"] if when == "after its writes" else [])
    imports.start("t1")
    imports.wait()
    job = imports.get("t1", job_id)
    assert job["status"] == "done", job
    roster = service.roster("t1")
    assert "stu-1000" not in roster.users and "stu-1001" in roster.users
    assert all(roster.enrollments.value(k, "user") != "stu-1000" for k in roster.enrollments)
    assert service.store.get("t1", "stu-1000") is None and service.store.get("t1", "stu-1001") is not None
    assert job["result"]["counts"]["students"] == 29 and job["result"]["counts"]["users"] == 31
    erased_note = "1 person this upload names was erased while it waited or ran, and taken out of the roster again"
    if when == "after its writes":  # the erasure itself took them out: nothing came back
        assert not any(erased_note in note for note in job["result"]["notes"])
    else:
        assert erased_note in job["result"]["notes"][-1]
    assert "stu-1000" not in str(job)
    kept = service.store.get_setting(job_setting("t1", job_id))[1]
    assert "erased" not in orjson.loads(kept) and "stu-1000" not in kept
    # an import of the same upload after the erasure brings the student back: it is new data
    again = RosterImports(service.import_roster, service.store, service.erase_noted)
    again.get("t1", again.accept("t1", bundle_zip()))
    again.start("t1")
    again.wait()
    assert "stu-1000" in service.roster("t1").users


def test_an_erasure_noted_on_an_import_that_runs_again_reaches_its_next_start(service) -> None:
    calls: list[int] = []

    def flaky(tenant, bundle, progress):
        calls.append(1)
        result = service.import_roster(tenant, bundle, progress)
        if len(calls) == 1:
            service.delete_learners("t1", ["stu-1000"])  # erased while the job runs, after its writes
            raise StoreUnavailable("the store went away")
        return result

    imports = RosterImports(flaky, service.store, service.erase_noted)
    job_id = imports.accept("t1", bundle_zip())
    imports.start("t1")
    imports.wait()
    job = imports.get("t1", job_id)
    assert job["status"] == "done" and job["attempts"] == 2, job
    assert "stu-1000" not in service.roster("t1").users and service.store.get("t1", "stu-1000") is None
    assert "was erased while it waited or ran" in job["result"]["notes"][-1]


@pytest.mark.parametrize("prefetch", [["*"], ["tenant-b", "nobody"], []])
def test_a_worker_reads_the_rosters_it_is_told_to_as_it_starts(tmp_path, shared_engine, prefetch) -> None:
    """``[serving] roster_prefetch``: the rosters a worker reads as it starts, in the background,
    so a teacher's first request does not wait for a district's; "*" is every tenant with a key
    and a roster (the default)."""
    from fastapi.testclient import TestClient

    from configs import load_config
    from serving.app import create_app
    from serving.auth import create_key
    from serving.service import LearnerService
    from serving.stores import open_store

    from .test_rosters import SCHOOL

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    try:
        from engine.roster import load_bundle

        LearnerService(shared_engine, store).import_roster("tenant-a", load_bundle(SCHOOL))
        LearnerService(shared_engine, store).import_roster("no-key", load_bundle(SCHOOL))
        key = create_key(store, "tenant-a", ["admin"])
        create_key(store, "tenant-b", ["admin"])  # a tenant without a roster
        config = load_config(env={})
        config = config.model_copy(update={"serving": config.serving.model_copy(update={"roster_prefetch": prefetch})})
        with TestClient(create_app(config, store=store, engine=shared_engine)) as client:
            cache = client.app.state.service.rosters._cache
            deadline = time.monotonic() + 30
            while prefetch == ["*"] and "tenant-a" not in cache and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # (time for a read that should not happen)
            assert sorted(cache) == (["tenant-a"] if prefetch == ["*"] else [])
            r = client.get("/v1/classes", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200 and len(r.json()["classes"]) == 2
    finally:
        store.close()


def test_the_command_follows_its_import_when_a_server_runs_it(service) -> None:
    """``zpd roster import`` keeps its bundle as a job: a server's look at the open jobs may start
    it first. The command then waits for it, showing its progress, and prints its outcome."""
    started, release = threading.Event(), threading.Event()

    def slow(tenant, bundle, progress):
        progress("roster", 3, 43)
        started.set()
        release.wait(30)
        return service.import_roster(tenant, bundle, progress)

    server = RosterImports(slow, service.store, service.erase_noted, lease_s=0.3)
    command = RosterImports(service.import_roster, service.store, service.erase_noted)
    seen: list[tuple[str, int, int]] = []
    command.on_progress = lambda *shown: seen.append(shown)
    job_id = command.accept("t1", bundle_zip())
    server.start("t1")
    assert started.wait(30)
    threading.Timer(0.5, release.set).start()
    job = command.run_here("t1", job_id, wait_s=0.02)
    assert job["status"] == "done" and job["result"]["counts"]["students"] == 30
    assert ("roster", 3, 43) in seen
    server.wait()


def test_an_import_the_command_leaves_half_way_is_finished_by_a_server(service) -> None:
    """^C in ``zpd roster import`` stops the job's lease renewal with it: the lease runs out, and
    a server's look at the open jobs runs the import again to its end."""

    def interrupted(tenant, bundle, progress):
        raise KeyboardInterrupt

    command = RosterImports(interrupted, service.store, service.erase_noted, lease_s=0.3)
    job_id = command.accept("t1", bundle_zip())
    with pytest.raises(KeyboardInterrupt):
        command.run_here("t1", job_id)
    assert not [t for t in threading.enumerate() if t.name == "roster-import-lease"]
    assert command.get("t1", job_id)["status"] == "running"
    time.sleep(0.4)
    server = RosterImports(service.import_roster, service.store, service.erase_noted, lease_s=0.3)
    server.poll()
    server.wait()
    job = server.get("t1", job_id)
    assert job["status"] == "done" and job["attempts"] == 2 and job["result"]["counts"]["students"] == 30
