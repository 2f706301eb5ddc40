"""Nightly planning on Ray: every class of a tenant planned for a school day, stored for the API.

`zpd plan-batch --store URL --tenant T --date D [--ray-address ADDR]` partitions the tenant's
classes by school (grouping stays within a school) and runs one Ray task per school, locally by
default or on an existing Ray cluster. Each task plans its classes through the learner service, as
the API does (`LearnerService.rotation`: the rotation with its small groups and every student's
playlist), adds each student's GPS snapshot, and stores the result as the store setting
``plan@TENANT@CLASS@DATE``; ``GET /v1/classes/{id}/rotation?date=D`` then serves it. Re-running a
date replaces its plans; ``resume`` skips the classes already planned for it (a stopped run goes
on where it stopped). Each stored plan is among the store's references of its learners, so
deleting a learner erases them from every stored plan that names them (:mod:`serving.plans`).
Each night's GPS snapshots also feed the tenant's measure of the GPS route overhead (what reaching a
goal took over what the route cost to master once, :mod:`serving.calibration`), taken at the end of
the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from serving.calibration import measure, observe
from serving.plans import check_date, plan_setting, reference_plans, store_plan

if TYPE_CHECKING:
    from engine.planner.gps import GoalStatus
    from engine.roster import Roster

__all__ = ["plan_school", "plan_tenant"]

_ENGINES: dict[str, Any] = {}  # per Ray worker process: the engine built once per configuration
_ROSTERS: dict[str, dict] = {}  # per Ray worker process and store: the rosters read (by version)


def plan_school(
    config_json: str, store_url: str, tenant: str, date: str, school: str, class_ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Plan and store the given classes of one school (runs in a Ray worker; the engine is built
    once per worker process), and record the night's GPS for the school's measure of the route
    overhead (:func:`serving.calibration.observe`). Returns the classes planned and the model
    versions that planned them."""
    from configs import ZPDConfig
    from serving.deployment import Deployment, served_engine
    from serving.service import LearnerService
    from serving.stores import open_store
    from serving.views import rotation_json, status_json

    planned, models = [], set()
    seen: dict[str, tuple[GoalStatus, int]] = {}  # the school's students: GPS status, activities done
    with open_store(store_url) as store:
        engine = _ENGINES.get(config_json)
        if engine is None:
            engine = _ENGINES[config_json] = served_engine(ZPDConfig.model_validate_json(config_json), store)
        else:
            Deployment(engine, store).sync()  # the model the API serves now (loaded only if it changed)
        # a district's roster is parsed once per worker, not once per school (it is checked
        # against the stored version on every read)
        service = LearnerService(engine, store, roster_cache=_ROSTERS.setdefault(store_url, {}))
        roster = service.roster(tenant)
        for class_id in class_ids:
            students = roster.members(class_id, "student")
            if not students:
                continue
            # each student read once, for the rotation and the GPS alike
            views = service.load_many(tenant, students, unseen=True, grades={s: roster.grade_of(s) for s in students})
            rotation, versions = service.rotation(tenant, students, views=views)
            now = service.clock()
            statuses = {s: views[s].core.status(views[s].learner, now) for s in students}
            seen.update(
                {
                    s: (statuses[s], views[s].learner.progress.activities)
                    for s in students
                    if home_school(roster, s) == school  # a student of two schools counts in one
                }
            )
            gps = {s: status_json(statuses[s]) for s in students}
            plan = {
                "class_id": class_id,
                "date": date,
                "planned_at": dt.datetime.now(dt.UTC).isoformat(),
                "model_version": versions[0] if len(versions) == 1 else versions,
                "learners": students,
                **rotation_json(rotation),
                "gps": gps,
            }
            store_plan(store, tenant, plan)
            planned.append(class_id)
            models.update(versions)
        if seen:
            observe(store, tenant, school, date, seen)
    return planned, sorted(models)


def plan_tenant(
    config: Any,
    store_url: str,
    tenant: str,
    date: str,
    *,
    ray_address: str | None = None,
    resume: bool = False,
    num_cpus: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Plan every class of ``tenant`` for ``date`` on Ray (local unless ``ray_address``)."""
    import ray

    from serving.stores import open_store

    date = check_date(date)
    with open_store(store_url) as store:
        from serving.rosters import RosterStore

        roster = RosterStore(store).get(tenant)
        by_school: dict[str, list[str]] = defaultdict(list)
        schools = sorted({_school(roster.classes[c]) for c in roster.classes})
        skipped = 0
        for class_id in sorted(roster.classes):
            if resume and store.get_setting(plan_setting(tenant, class_id, date)) is not None:
                skipped += 1
                continue
            by_school[_school(roster.classes[class_id])].append(class_id)
        reference_plans(store, tenant)  # plans stored before references existed
    started = time.perf_counter()
    own = not ray.is_initialized()
    if own:
        if ray_address is None:
            _quiet_local_token_notice()
        ray.init(
            address=ray_address,
            num_cpus=num_cpus if ray_address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=None,
        )
    try:
        task = ray.remote(plan_school)
        config_json = config.model_dump_json()
        pending = [
            task.remote(config_json, store_url, tenant, date, school, classes) for school, classes in by_school.items()
        ]
        total, done = sum(len(c) for c in by_school.values()), 0
        planned: list[str] = []
        models: set[str] = set()
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for classes, versions in ray.get(ready):
                planned += classes
                models.update(versions)
            done = len(planned)
            if progress is not None:
                progress(done, total)
    finally:
        if own:
            ray.shutdown()
    seconds = time.perf_counter() - started
    with open_store(store_url) as store:
        gps = measure(store, tenant, schools)  # the route overhead from every school's arrivals so far
    learners = sum(len(roster.members(c, "student")) for c in planned)
    return {
        "tenant": tenant,
        "date": date,
        "schools": len(by_school),
        "classes_planned": len(planned),
        "classes_skipped": skipped,
        "learners": learners,
        "models": sorted(models),  # the model versions that planned them: the API's (see served_engine)
        "seconds": round(seconds, 2),
        "learners_per_second": round(learners / seconds, 1) if seconds > 0 else None,
        "gps": gps,
    }


def home_school(roster: Roster, student: str) -> str:
    """The school whose GPS measure counts a student: the first, by id, of their classes' schools
    (a student enrolled in classes of two schools would otherwise arrive twice)."""
    return min((_school(roster.classes[c]) for c in roster.classes_of(student) if c in roster.classes), default="")


def _school(record: dict[str, Any]) -> str:
    return str(record.get("school") or "")


class _LocalTokenNotice(logging.Filter):
    """Ray's notice that a local instance it starts has token authentication on, as by default:
    nothing to act on for a plan run (an address to a cluster of one's own is not concerned)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_local_token_notice() -> None:
    notices = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _LocalTokenNotice) for f in notices.filters):
        notices.addFilter(_LocalTokenNotice())
