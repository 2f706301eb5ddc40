"""`zpd plan-batch` on a local Ray: every class of a tenant planned for a day and stored, served by
GET /v1/classes/{id}/rotation?date=D; re-running replaces, --resume skips, deletion erases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow  # Ray starts worker processes

SCHOOL = Path(__file__).resolve().parent.parent / "data" / "oneroster_school"


def test_a_tenant_planned_on_ray_and_served(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from configs import load_config
    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.calibration import school_setting
    from serving.deployment import Deployment
    from serving.stores import open_store
    from zpd.cli import app

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["roster", "import", str(SCHOOL), "--tenant", "school", "--store", url]).exit_code == 0
    with open_store(url) as store:  # the API serves graph BKT (a reload): the plans must come from it too
        deployed = Deployment(build_engine(load_config(env={})), store).set_model("bkt").version
    assert deployed.startswith("bkt-graph@")
    args = ["plan-batch", "--tenant", "school", "--date", "2026-12-04", "--store", url, "--cpus", "1", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert (summary["schools"], summary["classes_planned"], summary["learners"]) == (1, 2, 30)
    assert summary["models"] == [deployed]
    assert summary["gps"].items() >= {"route_overhead": None, "samples": 0, "needed": 20}.items()  # no arrival yet
    resumed = json.loads(runner.invoke(app, [*args, "--resume"]).stdout.strip().splitlines()[-1])
    assert resumed["classes_planned"] == 0 and resumed["classes_skipped"] == 2
    # a goal 20 of the school's students reached counts its own overhead, and the run says so
    arrivals = [{"date": "2026-11-20", "overheads": [2.0 + k / 10], "goal": "4.NF"} for k in range(20)]
    with open_store(url) as store:
        store.put_setting(school_setting("school", "org-school-7"), json.dumps({"anchors": {}, "samples": arrivals}))
    told = runner.invoke(app, [*args[:-1], "--resume"]).output
    assert "GPS route overhead: 2.95 measured from 20 arrivals at a goal and 0 students on their way" in told
    assert "goal 4.NF: its own overhead 2.95, measured from 20 arrivals and 0 students on their way" in told
    bad = runner.invoke(app, ["plan-batch", "--tenant", "school", "--date", "4 Dec", "--store", url])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output

    store = open_store(url)
    config = load_config(env={})
    key = create_key(store, "school", ["read", "teacher", "admin"])
    h = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(config, store=store, engine=build_engine(config, model_uri="bkt"))) as client:
        plan = client.get("/v1/classes/class-4a/rotation", params={"date": "2026-12-04"}, headers=h)
        assert plan.status_code == 200, plan.text
        body = plan.json()
        assert len(body["playlists"]) == 15 and set(body["gps"]) == set(body["learners"])
        assert body["model_version"] == deployed
        assert all(p["free_minutes"] == 0 for p in body["playlists"].values())
        assert body["withdrawn_since"] == []
        # an item withdrawn after the night's planning is named, for the teacher to skip (or re-plan)
        first = next(iter(body["playlists"].values()))["activities"][0]["item"]["id"]
        assert client.delete(f"/v1/items/{first}", headers=h).status_code == 200
        flagged = client.get("/v1/classes/class-4a/rotation", params={"date": "2026-12-04"}, headers=h).json()
        assert flagged["withdrawn_since"] == [first] and flagged["playlists"] == body["playlists"]
        missing = client.get("/v1/classes/class-4a/rotation", params={"date": "2026-12-05"}, headers=h)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_plan"
        assert client.delete("/v1/learners/stu-1000", headers=h).status_code == 200
        after = client.get("/v1/classes/class-4a/rotation", params={"date": "2026-12-04"}, headers=h).json()
        assert "stu-1000" not in json.dumps(after)
    store.close()


def test_only_rays_notice_of_its_default_token_authentication_is_quieted() -> None:
    """A local Ray instance has token authentication on by default, and Ray says so on every
    start: that notice alone is left out of a plan run's output; its other warnings stay."""
    import logging

    from serving.batch import _quiet_local_token_notice

    notices = logging.getLogger("ray._private.authentication.authentication_token_setup")
    _quiet_local_token_notice()
    _quiet_local_token_notice()
    assert len(notices.filters) == 1

    def shown(message: str) -> bool:
        record = logging.LogRecord(notices.name, logging.WARNING, __file__, 1, message, None, None)
        return notices.filter(record)

    assert not shown("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
    assert shown("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
