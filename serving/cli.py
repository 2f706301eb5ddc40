"""Serving commands: ``zpd serve``, ``zpd keys``, ``zpd replay`` (mounted by the zpd CLI)."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from configs import ZPDConfig, load_config
from serving.metrics import MULTIPROC_ENV

__all__ = ["keys_app", "lrs_app", "plan_batch", "replay", "roster_app", "serve"]

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
roster_app = typer.Typer(help="Classes and rosters: import a OneRoster CSV bundle.", no_args_is_help=True)
lrs_app = typer.Typer(help="Read statements back from a Learning Record Store.", no_args_is_help=True)
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="sqlite:///PATH or redis://HOST:PORT/DB (default: the configured store).")
]
CONFIG_ENV = "ZPD_CONFIG_FILE"  # how `zpd serve` hands its --config file to uvicorn workers


def _config(ctx: typer.Context) -> ZPDConfig:
    return ctx.obj if isinstance(ctx.obj, ZPDConfig) else load_config()


def store_from_option(ctx: typer.Context, url: str | None):
    """The store a command's ``--store`` names (default: the configured one); one that cannot be
    opened or reached (a Redis connects on first use) is one error line and exit status 1."""
    from serving.stores import open_store
    from serving.stores.base import StoreError

    opened = None
    try:
        opened = open_store(url or _config(ctx).store.url)
        opened.ping()
        return opened
    except StoreError as exc:
        if opened is not None:
            opened.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def app_from_env():
    """The uvicorn factory for `zpd serve`: config file and store URL come from the environment."""
    from serving.app import create_app

    return create_app(load_config(os.environ.get(CONFIG_ENV) or None))


def ensure_demo_key(store, data_dir: Path) -> str:
    """The demo tenant's key (every scope: the one who runs the demo server operates it too),
    created once and kept in ``data_dir/demo_key.txt``. A key kept there from before a scope
    existed is replaced by a new one; it keeps working with the scopes it had (an LRS may be set
    up with it)."""
    from serving.auth import SCOPES, KeyCache, create_key

    path = data_dir / "demo_key.txt"
    if path.exists():
        key = path.read_text().strip()
        principal = KeyCache(store, 0).verify(key)
        if principal is not None and principal.scopes >= set(SCOPES):
            return key
    key = create_key(store, "demo", list(SCOPES), label="demo")
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def serve(
    ctx: typer.Context,
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use a Redis store with more than one).")] = 1,
    demo_key: Annotated[
        bool, typer.Option("--demo-key", help="Create (once) and print a key for the 'demo' tenant.")
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            help="Log level of the server and its workers (uvicorn's and the engine's own: info shows each "
            "roster import's outcome, the rosters read at start, model swaps)."
        ),
    ] = "warning",
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs)."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    cfg = _config(ctx)
    url = store or cfg.store.url
    if workers > 1 and url.startswith("sqlite"):
        typer.echo("note: several workers share one SQLite file; writes serialize on its lock", err=True)
    opened = store_from_option(ctx, url)
    if demo_key:
        key = ensure_demo_key(opened, Path(cfg.serving.data_dir))
        typer.echo(f"demo API key (tenant 'demo'): {key}")
        typer.echo(f"try: curl -H 'Authorization: Bearer {key}' http://{host}:{port}/v1/model")
        typer.echo(f"teachers sign in at http://{host}:{port}/ui/login (this key works; or a teacher key)")
    opened.close()
    os.environ["ZPD_STORE_URL"] = url
    if workers > 1:  # the workers pool their /metrics values here (emptied at each start: counters start at 0)
        metrics_dir = Path(cfg.serving.data_dir).resolve() / "metrics" / str(port)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)  # prometheus_client's multiprocess mode, in the workers
    # one request = one small model call: BLAS thread pools only add contention between workers
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    config_file = ctx.parent.params.get("config") if ctx.parent is not None else None
    if config_file:
        os.environ[CONFIG_ENV] = str(Path(config_file).resolve())
    typer.echo(
        f"serving on http://{host}:{port} (docs at /docs, teachers' pages at /ui/), store {url.split('@')[-1]}, "
        f"{workers} worker(s)"
    )
    # the engine's loggers ("zpd.*") at the same level, through uvicorn's handler, in every worker
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["zpd"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    uvicorn.run(
        "serving.cli:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=log_config,
        access_log=False,
    )


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant the key belongs to.")],
    scopes: Annotated[
        str,
        typer.Option(
            help="Comma-separated: ingest, read, teacher, admin (every tenant scope), operator (swap the "
            "deployment's model; admin does not include it)."
        ),
    ] = "ingest,read",
    label: Annotated[str, typer.Option(help="A note to recognize the key by.")] = "",
    user: Annotated[
        str, typer.Option(help="The roster teacher (user id) the key belongs to: it then sees only her classes.")
    ] = "",
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"key": ...}.')] = False,
) -> None:
    """Create a key in the store `zpd serve --store` uses. The key is shown once."""
    from serving.auth import create_key

    opened = store_from_option(ctx, store)
    try:
        key = create_key(opened, tenant, [s.strip() for s in scopes.split(",") if s.strip()], label, user)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        opened.close()
    key_id = key.split("_")[1]
    typer.echo(json.dumps({"key": key, "key_id": key_id, "tenant": tenant}) if as_json else key)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key id (the part after zpd_).")],
    store: StoreOpt = None,
) -> None:
    """Revoke a key (it stops working within the server's key cache time, 2 s by default)."""
    opened = store_from_option(ctx, store)
    try:
        done = opened.revoke_key(key_id.split("_")[1] if key_id.startswith("zpd_") else key_id)
    finally:
        opened.close()
    if not done:
        typer.echo(f"error: no key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    store: StoreOpt = None,
) -> None:
    """Key ids, tenants and scopes (never secrets)."""
    opened = store_from_option(ctx, store)
    try:
        for key in opened.list_keys(tenant):
            typer.echo(
                f"{key.key_id}  {key.tenant:16} {','.join(key.scopes):28} {'revoked' if key.revoked else 'active'}  {key.label}"
            )
    finally:
        opened.close()


def replay(
    ctx: typer.Context,
    store: StoreOpt = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Compare with the live state and each checkpoint with its part of the log; write nothing."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Rebuild every learner's state from the event log with the current model."""
    from engine.learner import EXPOSURES_SINCE, META_VERSION, LearnerMeta, meta_in_layout
    from models.base import state_from_bytes
    from serving import checkpoints
    from serving.content import read_stamp
    from serving.deployment import served_engine
    from serving.evidence import evidence
    from serving.service import LearnerService, stored_state
    from serving.stores.base import VersionConflict

    opened = store_from_option(ctx, store)
    engine = served_engine(_config(ctx), opened)  # the model the API serves
    service = LearnerService(engine, opened)
    model = engine.models.current
    assert model is not None  # an engine's holder always has a model (build_engine loads one)
    summary: dict[str, Any] = {
        "model_version": model.version,
        # the tenants served a model of their own: their learners are folded with it
        "tenant_models": {t: e["version"] for t, e in engine.models.published.items() if tenant in (None, t)},
        "learners": 0,
        "rebuilt": 0,
        "matching": 0,
        "stamp_only": 0,
        "bad_checkpoints": 0,
        "differing": [],
    }
    try:
        for t, learner_id in opened.learners(tenant):
            record = opened.get(t, learner_id)
            if record is None:
                continue
            summary["learners"] += 1
            core = service.core(t)
            log = opened.events(t, learner_id)
            stored = LearnerMeta.from_json(record.meta)
            learner = core.rebuild(stored, evidence(log))
            meta = learner.meta.to_json()
            # the checkpoints a late answer would start from hold what their part of the log gives
            # (those of a state stamped otherwise by this model: as the next read retags them)
            readable = read_stamp(record.model_version, core.model_version) is not None
            stamped = record.model_version if readable else core.version
            # a record of an older meta layout is compared with what that layout holds of its fold
            layout = int(record.meta.get("v", META_VERSION))
            older = layout < META_VERSION
            bad = checkpoints.verify(core, stored, stamped, log, layout) if stored.checkpoints else []
            summary["bad_checkpoints"] += len(bad)
            kept = stored_state(learner, bool(log))  # what a record keeps (nothing before any event)
            state_ok = _same_state(state_from_bytes(record.state), learner.state) if record.state else not kept
            then = learner.meta
            if layout < EXPOSURES_SINCE and any(e.kind == "exposure" for e in log):  # folded answers only
                then = core.rebuild(LearnerMeta.from_json(record.meta), evidence(log, layout)).meta
            fresh = meta_in_layout(then.to_json(), layout) if older else meta
            held = bool(
                state_ok and json.loads(json.dumps(fresh)) == {k: v for k, v in record.meta.items() if k != "cp"}
            )
            # the model, the tenant's framework, the catalog, the units with a check, the alignment
            # (of a learner without an answer nothing is folded: no state is kept, the stamp tells nothing)
            same = (
                held and not older and (record.model_version == core.version or not (record.state or kept)) and not bad
            )
            summary["matching"] += same
            # what the log gives, under another stamp (one written before stamps named the
            # catalog, say) or in an older layout: no difference, and the next read writes it anew
            stamp_only = held and not same and not bad and (stamped != core.version or older)
            summary["stamp_only"] += stamp_only
            if not same and not stamp_only:
                summary["differing"].append(f"{t}/{learner_id}")
            if not check and not same:  # rebuilt without checkpoints: taken again as answers come
                service.record_stamp(core)  # what the stamp names, before it is written
                record.state, record.model_version, record.meta = kept, core.version, meta
                try:
                    opened.commit(record, record.version, [])
                    summary["rebuilt"] += 1
                except VersionConflict:
                    typer.echo(f"warning: {t}/{learner_id} changed during replay; run again", err=True)
    finally:
        opened.close()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"{summary['learners']} learner(s), {summary['matching']} already matching, "
            + (
                f"{summary['stamp_only']} matching but stamped otherwise or in an older layout (a read writes them "
                "anew), "
                if summary["stamp_only"]
                else ""
            )
            + f"{summary['rebuilt']} rebuilt with {model.version}"
            + "".join(f" ({t}'s with its own, {v})" for t, v in summary["tenant_models"].items())
            + (
                f", {summary['bad_checkpoints']} checkpoint(s) not what the log gives"
                if summary["bad_checkpoints"]
                else ""
            )
        )
    if check and summary["differing"]:
        raise typer.Exit(1)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-6, atol=1e-9) for k in a)


@roster_app.command("import")
def roster_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A folder of OneRoster CSV files, or a .zip of them.")],
    tenant: Annotated[str, typer.Option(help="The tenant whose roster this is.")],
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts, changes and notes as JSON.")] = False,
) -> None:
    """Import a OneRoster 1.1/1.2 bundle: bulk files replace, delta files merge; students get
    their roster grade. Importing the same bundle again changes nothing. The bundle is kept in the
    store as an import job, as an upload to the API is: run here after the tenant's imports sent
    before it (waiting while a server runs one) and listed with them on the roster page; should
    this command stop half-way, a server on the store finishes it."""
    from engine.roster import RosterError, bundle_bytes, open_zip
    from serving.deployment import served_engine
    from serving.imports import RosterImports, changes_in_words, doing_now
    from serving.service import LearnerService

    try:
        data = bundle_bytes(path)
        open_zip(data, str(path))
    except RosterError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    from rich.progress import Progress

    opened = store_from_option(ctx, store)

    @functools.cache
    def service() -> LearnerService:
        """The learner service, built when the import first needs it: after the bundle is read, so
        a district's rows and the engine are not both being built at once (200 MB less at the peak)
        and a bundle that cannot be read fails without waiting for the engine."""
        return LearnerService(served_engine(_config(ctx), opened), opened)  # the model the API serves

    try:
        imports = RosterImports(
            lambda tenant, bundle, shown: service().import_roster(tenant, bundle, shown),
            opened,
            lambda tenant, ids: service().erase_noted(tenant, ids),
        )
        with Progress(transient=True, disable=as_json) as bar:
            task = bar.add_task(f"importing the roster of {tenant}", total=None)

            def progress(phase: str, done: int, total: int) -> None:
                shown = {"phase": phase, "done": done, "total": total}
                bar.update(task, description=doing_now(shown), completed=done, total=total or None)

            imports.on_progress = progress
            job_id = imports.accept(tenant, data, str(path))
            del data  # kept in the store now
            job = imports.run_here(tenant, job_id)
    finally:
        opened.close()
    if job["status"] == "failed":
        typer.echo(f"error: {job['error']['message']}", err=True)
        raise typer.Exit(1)
    result = job["result"]
    if as_json:
        typer.echo(json.dumps(result))
        return
    counts, changed = result["counts"], changes_in_words(result["changes"])
    for note in result["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"{counts['users']} users ({counts['students']} students, {counts['teachers']} teachers), "
        f"{counts['classes']} classes, {counts['enrollments']} enrollments in {counts['orgs']} org(s); "
        + (changed or "(no change)")
        + f"; grade set for {result['grades_set']} student(s)"
    )


@lrs_app.command("pull")
def lrs_pull(
    ctx: typer.Context,
    lrs: Annotated[
        str, typer.Argument(help="The LRS's statements resource, e.g. http://lrs.example:8100/xAPI/statements.")
    ],
    tenant: Annotated[str, typer.Option(help="The tenant the statements belong to (its ingest key's tenant).")],
    user: Annotated[str, typer.Option(envvar="ZPD_LRS_USER", help="The LRS user (HTTP Basic).")],
    password: Annotated[
        str, typer.Option(envvar="ZPD_LRS_PASSWORD", prompt=True, hide_input=True, help="The LRS password.")
    ],
    since: Annotated[
        str | None,
        typer.Option(help="ISO-8601: read what the LRS stored since then (default: the cursor, else everything)."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO-8601: read what the LRS stored until then.")] = None,
    page_size: Annotated[int, typer.Option(min=1, max=10_000, help="Statements per LRS page.")] = 100,
    overlap: Annotated[
        float, typer.Option(min=0, help="Seconds the cursor is moved back (statements stored out of order).")
    ] = 300.0,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="NAME=VALUE, repeatable: an xAPI statements filter (agent, verb, activity, registration, "
            "related_activities, related_agents), for an LRS that holds others' statements too.",
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Store the statements an LRS holds that zpd has not received (an LRS forwards a statement
    once: what it stored while zpd was down or refusing never arrives). What arrived before is a
    duplicate; a refused statement is named and the others are stored. Exits with 1 when a
    statement was refused or not stored."""
    import httpx

    from engine.xapi import StatementError, parse_time
    from serving.deployment import served_engine
    from serving.lrs import XAPI_VERSION, LrsError, check_filters, pull
    from serving.service import ApiError, LearnerService
    from serving.stores.base import StoreError

    try:
        start = parse_time(since, "--since")[0] if since is not None else None
        end = parse_time(until, "--until")[0] if until is not None else None
        selected = {}
        for given in filters or []:
            key, sep, value = given.partition("=")
            if not sep or not key.strip():
                raise LrsError(f"--filter {given!r}: expected NAME=VALUE")
            selected[key.strip()] = value
        check_filters(selected)
    except (StatementError, LrsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    opened = store_from_option(ctx, store)
    headers = {"X-Experience-API-Version": XAPI_VERSION}
    try:
        with httpx.Client(auth=(user, password), headers=headers, timeout=60) as client:
            service = LearnerService(served_engine(_config(ctx), opened), opened)  # the model the API serves
            report = pull(
                service,
                tenant,
                client,
                lrs,
                since=start,
                until=end,
                page_size=page_size,
                overlap_s=overlap,
                filters=selected,
            )
    except (LrsError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        opened.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for w in report.warnings[:20]:
            typer.echo(f"kept with a part set aside: {w['id']}: {w['field']}: {w['message']}", err=True)
        for r in report.refused:
            typer.echo(f"refused: statement {r['id']}: {r['message']}", err=True)
        if report.not_stored:
            typer.echo(f"not stored (learners busy; pull again): {', '.join(report.not_stored[:20])}", err=True)
        typer.echo(
            f"{report.statements} statement(s) read in {report.pages} page(s) from {lrs}"
            + (f" since {report.since}" if report.since else "")
            + f": {report.accepted} stored, {report.duplicates} already there, {report.voided} voided, "
            f"{len(report.refused)} refused, {len(report.not_stored)} not stored; "
            + (f"cursor {report.cursor}" if report.cursor else "no cursor yet")
        )
    if report.refused or report.not_stored:
        raise typer.Exit(1)


def plan_batch(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant whose classes to plan.")],
    date: Annotated[str, typer.Option(help="The school day, YYYY-MM-DD.")],
    store: StoreOpt = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="An existing Ray cluster (default: Ray on this machine).")
    ] = None,
    cpus: Annotated[int | None, typer.Option(help="Worker processes of the local Ray (default: every core).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip the classes already planned for the date.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Plan every class of a tenant for a school day on Ray (rotations, playlists, GPS snapshots)
    and store the plans: GET /v1/classes/{id}/rotation?date=D serves them. Re-running a date
    replaces its plans. The GPS snapshots also measure the tenant's route overhead once enough
    students have reached their goal (its GPS then counts that one)."""
    from rich.progress import Progress

    from serving.batch import plan_tenant
    from serving.plans import check_date

    cfg = _config(ctx)
    url = store or cfg.store.url
    try:
        check_date(date)
        store_from_option(ctx, url).close()  # reachable, before Ray starts
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    with Progress(transient=True, disable=as_json) as bar:
        job = bar.add_task(f"planning {tenant} for {date}", total=None)
        summary = plan_tenant(
            cfg,
            url,
            tenant,
            date,
            ray_address=ray_address,
            resume=resume,
            num_cpus=cpus,
            progress=lambda done, total: bar.update(job, completed=done, total=total),
        )
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"{summary['classes_planned']} class(es) of {summary['schools']} school(s) planned for {summary['date']} "
            f"({summary['learners']} learners, {summary['seconds']} s, {summary['learners_per_second']} learners/s)"
            + (f" with model {', '.join(summary['models'])}" if summary["models"] else "")
            + (f"; {summary['classes_skipped']} already planned" if summary["classes_skipped"] else "")
        )
        gps = summary["gps"]
        typer.echo(
            f"GPS route overhead: {gps['route_overhead']} measured from {gps['samples']} arrivals at a goal and "
            f"{gps['on_the_way']} students on their way"
            if gps["route_overhead"] is not None
            else f"GPS route overhead: {gps['samples']} arrival(s) at a goal seen and {gps['on_the_way']} student(s) "
            f"on their way; it is measured once {gps['needed']} have arrived and half of those watched have arrived "
            f"or gone past the median (the configured {cfg.planner.route_overhead:g} counts meanwhile)"
        )
        for goal, own in gps["goals"].items():
            typer.echo(
                f"  goal {goal.replace('+', ', ')}: its own overhead {own['route_overhead']}, measured from "
                f"{own['samples']} arrivals and {own['on_the_way']} students on their way"
            )
