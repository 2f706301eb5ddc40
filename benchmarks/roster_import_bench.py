"""A district's roster export imported over HTTP and with the CLI.

The export is what a student information system writes (``district_export``): UUID ids in every
id column, e-mail addresses, user names, a BOM and CRLF line endings, quoted titles and names
with commas; three classes a student in elementary grades, six from grade 6. For each store the
script starts ``zpd serve`` (one worker), posts the zip to ``POST /v1/rosters`` as an admin would,
follows the import (``GET /v1/rosters/imports/{id}``) through its phases, posts the same export
again (a nightly import where nothing changed), then imports it with ``zpd roster import`` into
another tenant of the same store. The server's peak memory is its ``VmHWM``; the CLI's, its
``ru_maxrss``. With ``--next-rate``, ``/next`` at that rate on a quiet server, during an import,
while a worker first reads the district's roster, and after a restart (a teacher's first class
list then). With ``--baseline REF``, that tree's server and CLI are given the same export.

    python benchmarks/roster_import_bench.py --students 100000 --stores sqlite,redis \\
        --baseline 8f68316 --out docs/benchmarks/roster_import.md

Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import redis
from reports import write_report
from serve_bench import ROOT, ZPD, baseline_tree, drive, start_server, store_for

SUBJECTS = ("Math", "ELA", "Science", "History", "Art", "PE")
GIVEN = ("Ana", "Omar", "Ines", "Kofi", "Mei", "Luca", "Sara", "Yusuf", "Nia", "Tomas", "Zoe", "Ravi")
FAMILY = ("Okafor", "Park", "Diaz", "Nguyen", "Smith", "Kowalski", "Haddad", "Silva", "Ito", "Moreau")
STAMP = "2026-08-20T06:00:00.000Z"


def district_export(students: int, seed: int = 7) -> tuple[bytes, dict[str, int]]:
    """A OneRoster 1.1 bulk export of a district of ``students`` students in schools of about
    700, as a zip, and its counts (rows per file, bytes unpacked)."""
    rnd = random.Random(seed)

    def uid() -> str:
        return str(uuid.UUID(int=rnd.getrandbits(128)))

    district, term = uid(), uid()
    schools = [uid() for _ in range(max(1, students // 700))]
    orgs = ["sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"]
    orgs.append(f"{district},active,{STAMP},Riverside Unified,district,RU,")
    orgs += [f"{s},active,{STAMP},School {k},school,S{k:03d},{district}" for k, s in enumerate(schools)]
    users = [
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,"
        "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password"
    ]
    classes = [
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,"
        "schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods"
    ]
    enrollments = [
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate"
    ]
    per_school = students // len(schools)
    number = 100000
    for k, school in enumerate(schools):
        by_grade: dict[int, list[str]] = {}
        for grade in range(13):
            label = "KG" if grade == 0 else f"{grade:02d}"
            sections = max(1, per_school // 13 // 25) * (6 if grade >= 6 else 3)
            for c in range(sections):
                class_id, teacher = uid(), uid()
                subject = SUBJECTS[c % len(SUBJECTS)]
                classes.append(
                    f'{class_id},active,{STAMP},"Grade {grade} {subject}, section {c}",{label},{uid()},'
                    f"C{grade}-{c},scheduled,Room {c},{school},{term},{subject},,{c % 8 + 1}"
                )
                given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
                users.append(
                    f"{teacher},active,{STAMP},true,{school},teacher,{given[0]}{family}{k}{c}{grade}".lower()
                    + f",,{given},{family},,T{k}-{grade}-{c},{given}.{family}.{k}{grade}{c}@district.example,,,,,"
                )
                enrollments.append(f"{uid()},active,{STAMP},{class_id},{school},{teacher},teacher,true,,")
                by_grade.setdefault(grade, []).append(class_id)
        for s in range(per_school):
            grade = s % 13
            label = "KG" if grade == 0 else f"{grade:02d}"
            student, number = uid(), number + 1
            given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
            users.append(
                f'{student},active,{STAMP},true,{school},student,s{number},{{SIS:{number}}},{given},"{family}, Jr.",,'
                f"{number},s{number}@students.district.example,,,,{label},"
            )
            pool = by_grade[grade]
            for class_id in rnd.sample(pool, min(6 if grade >= 6 else 3, len(pool))):
                enrollments.append(
                    f"{uid()},active,{STAMP},{class_id},{school},{student},student,false,2026-08-25,2027-06-10"
                )
    files = {
        "manifest.csv": [
            "propertyName,value",
            "manifest.version,1.0",
            "oneroster.version,1.1",
            *(f"file.{n},bulk" for n in ("academicSessions", "orgs", "users", "classes", "enrollments")),
        ],
        "academicSessions.csv": [
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear",
            f"{term},active,{STAMP},2026-27,schoolYear,2026-08-25,2027-06-10,,2027",
        ],
        "orgs.csv": orgs,
        "users.csv": users,
        "classes.csv": classes,
        "enrollments.csv": enrollments,
    }
    buffer, unpacked = io.BytesIO(), 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, lines in files.items():
            data = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()
            unpacked += len(data)
            archive.writestr(name, data)
    counts = {"users": len(users) - 1, "classes": len(classes) - 1, "enrollments": len(enrollments) - 1}
    return buffer.getvalue(), {**counts, "unpacked_bytes": unpacked}


def _vm(pid: int, field: str) -> float:
    """A ``/proc/PID/status`` memory field in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _import_over_http(client: httpx.Client, export: bytes, prefer: str = "") -> dict[str, Any]:
    """POST the export (with ``prefer`` as its ``Prefer`` header), follow it to its end; the
    phases' first sightings (polled every 0.25 s) give how long each took, within a poll."""
    began = time.perf_counter()
    headers = {"content-type": "application/zip", **({"prefer": prefer} if prefer else {})}
    r = client.post("/v1/rosters", content=export, headers=headers, timeout=600)
    answered = time.perf_counter() - began
    out: dict[str, Any] = {"status": r.status_code, "answered_s": round(answered, 2)}
    if r.status_code not in (200, 202):
        out["error"] = r.json().get("error", {}).get("message", r.text)[:200]
        return out
    body = r.json()
    import_id = body.get("import_id")
    seen: dict[str, float] = {}
    job = body
    if r.status_code == 202:
        while job["status"] not in ("done", "failed"):
            time.sleep(0.25)
            job = client.get(f"/v1/rosters/imports/{import_id}").json()
            if job.get("progress"):
                seen.setdefault(job["progress"]["phase"], time.perf_counter() - began)
        result = job["result"] or job["error"]
    else:
        result = body
    out.update(
        outcome=job.get("status", "done"),
        total_s=round(time.perf_counter() - began, 2),
        phases_first_seen_s={k: round(v, 1) for k, v in seen.items()},
        changes=result.get("changes") or {},
        grades_set=result.get("grades_set"),
    )
    return out


def _seconds(start: str, end: str) -> float:
    """Seconds between two of the API's ISO-8601 times."""
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _admin_key(workdir: Path, root: Path, tenant: str) -> str:
    """A new admin key of ``tenant``, made with the tree's ``zpd keys create``."""
    made = subprocess.run(
        [str(ZPD), "--config", str(workdir / "bench.toml"), "keys", "create", "--tenant", tenant, "--scopes"]
        + ["admin", "--json"],
        capture_output=True,
        text=True,
        cwd=root,
        env=None if root == ROOT else {**os.environ, "PYTHONPATH": str(root)},
        check=True,
    )
    return json.loads(made.stdout)["key"]


def _next_under_import(
    pid: int, base: str, key: str, workdir: Path, root: Path, export: bytes, rate: float
) -> dict[str, Any]:
    """``/next`` for learners never seen (a grade hint each) at a fixed rate from a separate
    process (serve_bench's generator), 20 s on a quiet server, then 20 s while the export is
    imported into a tenant of its own; the import's time under that load. Then 12 s more from
    the import's end, a class list of that tenant asked 2 s in: the worker reads the district's
    whole roster in that time (when the import ends, or for that request in a tree that waits for
    one), as after a start."""
    paths = [f"/v1/learners/new-{k % 500}/next?grade={k % 8 + 1}" for k in range(int(rate * 20))]
    requests = [{"method": "GET", "path": p} for p in paths]
    drive(base, key, requests[: int(rate * 5)], rate, server=pid)  # warm-up, not measured
    quiet = drive(base, key, requests, rate, server=pid)
    admin = _admin_key(workdir, root, "load")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as client:
        posted = client.post(
            "/v1/rosters",
            content=export,
            headers={"content-type": "application/zip", "prefer": "respond-async"},
            timeout=600,
        ).json()
        midway: dict[str, Any] = {}
        teacher = threading.Thread(target=_class_list_midway, args=(base, admin, posted["import_id"], midway))
        teacher.start()
        during = drive(base, key, requests, rate, server=pid)
        teacher.join()
        while (job := client.get(f"/v1/rosters/imports/{posted['import_id']}").json())["status"] not in (
            "done",
            "failed",
        ):
            time.sleep(0.25)
        first_read: dict[str, Any] = {}

        def read_roster() -> None:
            time.sleep(2.0)
            began = time.perf_counter()
            answer = client.get("/v1/classes?limit=5", timeout=600)
            first_read.update(status=answer.status_code, seconds=round(time.perf_counter() - began, 2))

        reader = threading.Thread(target=read_roster)
        held_before = _vm(pid, "VmRSS")
        reader.start()
        reading = drive(base, key, requests[: int(rate * 12)], rate, server=pid)
        reader.join()
        first_read["copy_mb"] = round(_vm(pid, "VmRSS") - held_before)  # what the worker's copy costs it
    keep = ("throughput", "errors", "p50", "p95", "p99", "server_cpu_ms")
    return {
        "rate": rate,
        "quiet": {k: quiet[k] for k in keep},
        "during": {k: during[k] for k in keep},
        "roster_read": {**{k: reading[k] for k in (*keep, "max")}, "request": first_read},
        "midway": midway,
        "import_s": round(_seconds(job["submitted"], job["finished"]), 1),
        "import_status": job["status"],
    }


def _class_list_midway(base: str, admin: str, import_id: str, out: dict[str, Any]) -> None:
    """A teacher's class list while the import writes the roster (its ``roster`` phase, half-way
    through its steps): how long it takes, and how many of the district's classes it lists then."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=600) as client:
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            job = client.get(f"/v1/rosters/imports/{import_id}").json()
            progress = job.get("progress") or {}
            if job["status"] in ("done", "failed"):
                out.update(missed=job["status"])  # the roster phase came and went between two looks
                return
            if progress.get("phase") == "roster" and progress.get("done", 0) >= progress.get("total", 0) // 2:
                break
            time.sleep(0.05)
        began = time.perf_counter()
        answer = client.get("/v1/classes?limit=5")
        seconds = round(time.perf_counter() - began, 2)
        status = client.get(f"/v1/rosters/imports/{import_id}").json()["status"]
        out.update(status=answer.status_code, seconds=seconds, classes=answer.json().get("total"), import_then=status)


def _midway(m: dict[str, Any] | None) -> str:
    if not m:
        return "-"
    if "missed" in m:
        return f"missed ({m['missed']})"
    return f"{m['seconds']} s ({m['status']}), {m['classes']} classes, import {m['import_then']}"


def _after_restart(pid: int, base: str, key: str, workdir: Path, root: Path, rate: float) -> dict[str, Any]:
    """A restart on the store the phases before filled (the district's roster in three tenants,
    two of them with keys): ``/next`` at the fixed rate over the 30 s after the server is ready,
    and a class list of the ``load`` tenant asked 25 s in, a teacher's first request after a
    restart (a tree that reads the rosters as it starts has done so by then). The worker's
    ``VmRSS`` after."""
    admin = _admin_key(workdir, root, "load")
    ready = time.perf_counter()
    paths = [f"/v1/learners/new-{k % 500}/next?grade={k % 8 + 1}" for k in range(int(rate * 30))]
    asked: dict[str, Any] = {}

    def class_list() -> None:
        time.sleep(max(0.0, 25.0 - (time.perf_counter() - ready)))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as client:
            began = time.perf_counter()
            answer = client.get("/v1/classes?limit=5", timeout=600)
            asked.update(status=answer.status_code, seconds=round(time.perf_counter() - began, 3))

    teacher = threading.Thread(target=class_list)
    teacher.start()
    window = drive(base, key, [{"method": "GET", "path": p} for p in paths], rate, server=pid)
    teacher.join()
    keep = ("throughput", "errors", "p50", "p95", "p99", "max", "server_cpu_ms")
    return {"rate": rate, "next": {k: window[k] for k in keep}, "class_list": asked, "rss_mb": round(_vm(pid, "VmRSS"))}


def bench_tree(store: str, root: Path, export_path: Path, workdir: Path, next_rate: float = 0) -> dict[str, Any]:
    with store_for(store, workdir) as url:
        proc, base, key = start_server(url, 1, workdir, root=root)
        try:
            export = export_path.read_bytes()
            out: dict[str, Any] = {"rss_before_mb": round(_vm(proc.pid, "VmRSS"))}
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
                out["first"] = _import_over_http(client, export, "respond-async")
                out["peak_after_first_mb"] = round(_vm(proc.pid, "VmHWM"))
                if out["first"]["status"] in (200, 202):
                    out["again"] = _import_over_http(client, export)
            out["peak_mb"] = round(_vm(proc.pid, "VmHWM"))
            out["rss_after_mb"] = round(_vm(proc.pid, "VmRSS"))  # what the worker keeps
            if store == "redis":
                out["store_mb"] = round(redis.Redis.from_url(url).info("memory")["used_memory"] / 1e6, 1)
            else:
                out["store_mb"] = round(sum(f.stat().st_size for f in workdir.glob("zpd.db*")) / 1e6, 1)
            # the CLI, into another tenant of the same store: a process of its own, started by a
            # wrapper whose only child it is (so the wrapper's children's peak is the CLI's)
            began = time.perf_counter()
            cli = subprocess.run(
                [sys.executable, "-c", _PEAK, str(ZPD), "--config", str(workdir / "bench.toml"), "roster", "import"]
                + [str(export_path), "--tenant", "cli", "--json"],
                capture_output=True,
                text=True,
                cwd=root,
                env=None if root == ROOT else {**os.environ, "PYTHONPATH": str(root)},
            )
            errors = cli.stderr.strip().splitlines()
            out["cli"] = {
                "exit": cli.returncode,
                "seconds": round(time.perf_counter() - began, 2),
                "peak_mb": round(int(errors[-1].removeprefix("peak-kb ")) / 1024),
                "error": errors[-2][:200] if cli.returncode else None,
            }
            if next_rate > 0 and out["first"]["status"] in (200, 202):
                out["next"] = _next_under_import(proc.pid, base, key, workdir, root, export, next_rate)
                proc.terminate()
                proc.wait(30)
                proc, base, key = start_server(url, 1, workdir, root=root)
                out["restart"] = _after_restart(proc.pid, base, key, workdir, root, next_rate)
            return out
        finally:
            proc.terminate()
            proc.wait(30)


_PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print('peak-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def _side_by_side(results: dict, baseline: dict) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(store, tree, its run) for each store, the baseline's run first."""
    for store in results:
        for label, runs in (("baseline", baseline), ("this tree", results)):
            if runs.get(store):
                yield store, label, runs[store]


def _table(
    results: dict, baseline: dict, part: str, row: Callable[[dict[str, Any]], str], intro: str, columns: str
) -> list[str]:
    """A table of one part of each run (none when no run has it): its paragraph, then a row per
    store and tree, the baseline's first; ``columns`` and ``row`` give what follows the store and
    the tree."""
    if not any(part in r for r in results.values()):
        return []
    lines = ["", intro, "", f"| store | tree | {columns} |", "|" + "---|" * (columns.count("|") + 3)]
    for store, label, r in _side_by_side(results, baseline):
        if part in r:
            lines.append(f"| {store} | {label} | {row(r[part])} |")
    return lines


def report(results: dict, baseline: dict, args: argparse.Namespace, command: str, export: dict) -> str:
    lines = [
        "# Roster import benchmark",
        "",
        f"Produced by `{command}` on {platform.machine()}, {os.cpu_count()} cores "
        f"({time.strftime('%Y-%m-%d')}). The export: {args.students:,} students in schools of about 700, "
        f"{export['users']:,} users, {export['classes']:,} classes, {export['enrollments']:,} enrollments; "
        f"{export['zip_bytes'] / 1e6:.1f} MB zipped, {export['unpacked_bytes'] / 1e6:.1f} MB unpacked "
        "(UUID ids, e-mail addresses, a BOM and CRLF, quoted fields with commas). One server worker; "
        "Redis with `appendonly yes`, `appendfsync always`; SQLite with WAL and `synchronous=FULL`. "
        "The first import is sent with `Prefer: respond-async` (`answered`: the 202, once the upload is kept in "
        "the store), `done`: from the POST to the import's end, followed every 0.25 s; `again`: the same export "
        "once more, sent as a client that waits (the server waits up to 10 s, then answers 202), a nightly "
        "import where nothing changed. Server memory: its `VmRSS` once ready, its "
        "`VmHWM` over the whole run, its `VmRSS` after both imports (what it keeps); the CLI's `ru_maxrss`. An "
        "upload of `roster_apart_bytes` (4 MiB) or more is imported in a process of its own where the tree has "
        "that (its memory is not the server's).",
        "",
        "| store | tree | POST answered | status | done (s) | again (s) | server before / peak / after MB "
        "| store MB | CLI (s) | CLI peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for store, label, r in _side_by_side(results, baseline):
        first, again, cli = r["first"], r.get("again") or {}, r["cli"]
        lines.append(
            f"| {store} | {label} | {first['answered_s']} s | {first['status']}"
            + (f" ({first['error']})" if first.get("error") else "")
            + f" | {first.get('total_s', '-')} | {again.get('total_s', '-')} "
            f"| {r['rss_before_mb']} / {r['peak_mb']} / {r.get('rss_after_mb', '-')} "
            f"| {r['store_mb']} | "
            + (f"{cli['seconds']}" if cli["exit"] == 0 else f"exit {cli['exit']}: {cli['error']}")
            + f" | {cli['peak_mb']} |"
        )

    def next_row(n: dict[str, Any]) -> str:
        q, d, f = n["quiet"], n["during"], n.get("roster_read") or {}
        request = f.get("request", {})
        return (
            f"{n['rate']:g} | {q['p50']} / {q['p99']} | {d['p50']} / {d['p99']} | {d['throughput']}, {d['errors']} "
            f"| {q['server_cpu_ms']} / {d['server_cpu_ms']} | {n['import_s']} ({n['import_status']}) "
            f"| {f.get('p50', '-')} / {f.get('p99', '-')} / {f.get('max', '-')} "
            f"| {request.get('seconds', '-')} | {request.get('copy_mb', '-')} | {_midway(n.get('midway'))}"
        )

    def restart_row(a: dict[str, Any]) -> str:
        n, c = a["next"], a["class_list"]
        return (
            f"{a['rate']:g} | {n['p50']} / {n['p99']} / {n['max']} | {n['throughput']}, {n['errors']} "
            f"| {n['server_cpu_ms']} | {c.get('seconds', '-')} ({c.get('status', '-')}) | {a['rss_mb']}"
        )

    lines += _table(
        results,
        baseline,
        "next",
        next_row,
        "`/next` for learners never seen (a grade hint each) at a fixed rate, from a separate process "
        "(serve_bench's open-loop generator): 20 s on the quiet server, then 20 s while the same export is "
        "imported into a tenant of its own (`import`: from its POST to its end, under that load). Then 12 s "
        "more from the import's end, a class list of that tenant asked 2 s in (`its request`): the worker reads "
        "the district's whole roster in that time, when the import ends or for that request in a tree that "
        "waits for one, as after a start (`first roster read`). `copy MB`: the worker's `VmRSS` after that "
        "read less before it, what its copy of the district's roster costs it. `class list while importing`: "
        "a class list of that tenant asked once the import has written half the steps of the roster, its time, the "
        "classes it listed, and whether the import was still running when it answered.",
        "rate | quiet p50 / p99 ms | during the import p50 / p99 ms | during: throughput, errors "
        "| server CPU ms per /next quiet / during | import (s) | first roster read: p50 / p99 / max ms "
        "| its request (s) | copy MB | class list while importing",
    )
    lines += _table(
        results,
        baseline,
        "restart",
        restart_row,
        "After a restart on the same store (the district's roster in three tenants, two with API keys): "
        "`/next` at the same rate over the 30 s after the server is ready, and a class list of one of those "
        "tenants asked 25 s in, a teacher's first request after a restart (`class list`). A tree that reads "
        "the tenants' rosters as it starts (`[serving] roster_prefetch`) reads them in that window; one that "
        "does not reads that tenant's for that request. `RSS`: the worker's `VmRSS` after.",
        "rate | /next p50 / p99 / max ms | throughput, errors | server CPU ms per /next | class list (s) | RSS MB",
    )
    lines += ["", "Phases of this tree's first import (first seen, seconds from the POST):", ""]
    for store, r in results.items():
        added = ", ".join(f"{kind} +{c['added']}" for kind, c in r["first"].get("changes", {}).items() if c["added"])
        lines.append(f"- {store}: {r['first'].get('phases_first_seen_s')}; {added}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100000)
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--baseline", default=None, help="a git ref given the same export, right before this tree")
    parser.add_argument("--next-rate", type=float, default=200.0, help="/next req/s during an import (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "roster_import.md")
    args = parser.parse_args()
    command = "python benchmarks/roster_import_bench.py " + " ".join(sys.argv[1:])
    results: dict = {}
    baseline: dict = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        data, export = district_export(args.students)
        export["zip_bytes"] = len(data)
        export_path = Path(tmp) / "export.zip"
        export_path.write_bytes(data)
        del data
        tree = stack.enter_context(baseline_tree(args.baseline, Path(tmp))) if args.baseline else None
        for store in args.stores.split(","):
            for label, root, out in ([("baseline", tree, baseline)] if tree else []) + [("current", ROOT, results)]:
                workdir = Path(tmp) / f"{store}-{label}"
                workdir.mkdir()
                out[store] = bench_tree(store, root, export_path, workdir, args.next_rate)
                print(json.dumps({label: {store: out[store]}}, indent=1), flush=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"export": export, "results": results, "baseline": baseline}, indent=1) + "\n"
    )
    write_report(args.out, report(results, baseline, args, command, export))


if __name__ == "__main__":
    main()
