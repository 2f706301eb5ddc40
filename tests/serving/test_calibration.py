"""The GPS route overhead measured from a tenant's own nightly plans (serving.calibration): anchors
on the first night with a goal, a sample on the night it is reached, the students still on their
way counted as "more than what they did", the median once there are enough, and the tenant's GPS
counting it."""

from __future__ import annotations

import datetime as dt
import statistics

import orjson
import pytest

from configs import PlannerConfig
from engine.planner.gps import GoalStatus
from serving.calibration import (
    MIN_SAMPLES,
    SAMPLE_DAYS,
    SNAPSHOTS,
    STALE_DAYS,
    forget_anchors,
    measure,
    observe,
    planner_settings,
    school_setting,
    survival_quantiles,
    tenant_setting,
)
from serving.plans import learner_references

GOAL = ("4.NF.A.1",)


def status(kind: str, activities: float = 30.0, overhead: float = 3.0, goal: tuple[str, ...] = GOAL) -> GoalStatus:
    return GoalStatus(goal, ["4.NF.A.1"], 0, 1, activities, activities * 4, 5.0, None, kind, "", None, overhead)


def record(store, school: str = "north", tenant: str = "t") -> dict:
    return orjson.loads(store.get_setting(school_setting(tenant, school))[1])


def test_a_sample_is_what_reaching_the_goal_took_over_the_route_s_cost_once(store) -> None:
    # night 1: 30 activities estimated at an overhead of 3, i.e. 10 to master the route once
    assert observe(store, "t", "north", "2026-12-01", {"ana": (status("on_track"), 4)}) == {"anchors": 1, "samples": 0}
    anchor = record(store)["anchors"]["ana"]
    assert anchor == {"goal": list(GOAL), "date": "2026-12-01", "activities": 4, "once": 10.0}
    assert "gps-route@t@north" in store.references("t", "ana")
    # a night later, not there yet: the first anchor stays, and notes how far she has come
    observe(store, "t", "north", "2026-12-02", {"ana": (status("at_risk", 20.0), 14)})
    assert record(store)["anchors"]["ana"] == {**anchor, "seen": ["2026-12-02", 14]}
    version = store.get_setting(school_setting("t", "north"))[0]
    observe(store, "t", "north", "2026-12-02", {"ana": (status("at_risk", 20.0), 14)})  # the night again: no write
    assert store.get_setting(school_setting("t", "north"))[0] == version
    # reached after 29 more activities: 2.9 times the cost once; the anchor goes
    assert observe(store, "t", "north", "2026-12-05", {"ana": (status("reached"), 33)}) == {"anchors": 0, "samples": 1}
    assert record(store) == {"anchors": {}, "samples": [{"date": "2026-12-05", "overheads": [2.9], "goal": "4.NF.A.1"}]}
    # the same night again, and the nights after: nothing more
    observe(store, "t", "north", "2026-12-05", {"ana": (status("reached"), 33)})
    observe(store, "t", "north", "2026-12-06", {"ana": (status("reached"), 35)})
    assert len(record(store)["samples"]) == 1


def test_an_anchor_keeps_an_estimate_of_the_route_left_every_two_weeks(store) -> None:
    """The GPS estimates every night, and the overhead grows toward the goal: each arrival is a
    sample of the first night's estimate and of a few later ones."""
    observe(store, "t", "north", "2026-12-01", {"ana": (status("on_track"), 0)})  # 10 activities once
    observe(store, "t", "north", "2026-12-10", {"ana": (status("on_track", 24.0), 8)})  # too soon for another
    observe(store, "t", "north", "2026-12-15", {"ana": (status("on_track", 15.0), 20)})  # 5 left once
    assert record(store)["anchors"]["ana"]["later"] == [["2026-12-15", 20, 5.0]]
    observe(store, "t", "north", "2027-01-04", {"ana": (status("reached"), 35)})
    assert record(store)["samples"] == [{"date": "2027-01-04", "overheads": [3.5, 3.0], "goal": "4.NF.A.1"}]
    # a student on the way for months keeps a few estimates, not one every two weeks
    for week in range(0, 30, 2):
        night = (dt.date(2027, 1, 5) + dt.timedelta(weeks=week)).isoformat()
        observe(store, "t", "north", night, {"bob": (status("on_track"), week)})
    assert len(record(store)["anchors"]["bob"]["later"]) == SNAPSHOTS - 1
    measured = measure(store, "t", ["north"])
    assert measured["samples"] == 1 and measured["on_the_way"] == 1


def test_a_goal_changed_on_the_way_measures_nothing(store) -> None:
    observe(store, "t", "north", "2026-12-01", {"ana": (status("on_track"), 0), "bob": (status("no_goal"), 0)})
    assert set(record(store)["anchors"]) == {"ana"}  # no goal, no route: no anchor
    other = ("5.NF.A.1",)
    observe(store, "t", "north", "2026-12-02", {"ana": (status("on_track", 60.0, goal=other), 8)})
    assert record(store)["anchors"]["ana"] == {"goal": list(other), "date": "2026-12-02", "activities": 8, "once": 20.0}
    # the old goal reached later (set again) is not a sample: its anchor went with the change
    observe(store, "t", "north", "2026-12-03", {"ana": (status("reached"), 40)})
    assert record(store) == {"anchors": {}, "samples": []}


def test_the_tenant_s_overhead_is_the_median_once_there_are_enough(store) -> None:
    for k in range(MIN_SAMPLES - 1):
        learner = f"s{k}"
        observe(store, "t", "north" if k % 2 else "south", "2026-12-01", {learner: (status("on_track"), 0)})
        observe(store, "t", "north" if k % 2 else "south", "2026-12-09", {learner: (status("reached"), 20 + k)})
    few = measure(store, "t", ["north", "south"])
    assert few.items() >= {"route_overhead": None, "samples": MIN_SAMPLES - 1, "needed": 20}.items()
    assert orjson.loads(store.get_setting(tenant_setting("t"))[1]) == few  # what GET /v1/gps tells
    observe(store, "t", "south", "2026-12-01", {"last": (status("on_track"), 0)})
    observe(store, "t", "south", "2026-12-09", {"last": (status("reached"), 60)})
    measured = measure(store, "t", ["north", "south", "west"])  # a school with no record yet counts nothing
    # samples 2.0, 2.1, ..., 3.8 and 6.0: the median is 2.95
    assert measured["samples"] == MIN_SAMPLES and measured["route_overhead"] == 2.95
    assert orjson.loads(store.get_setting(tenant_setting("t"))[1]) == measured


def test_erasing_a_learner_erases_their_anchor(store) -> None:
    observe(store, "t", "north", "2026-12-01", {"ana": (status("on_track"), 0), "bob": (status("on_track"), 0)})
    forget_anchors(store, "t", ["ana"], learner_references(store, "t", ["ana"]))
    assert set(record(store)["anchors"]) == {"bob"}


def test_a_tenant_s_gps_counts_its_measured_overhead_and_no_other_tenant_s(api) -> None:
    c = api.client
    c.app.state.service.content.refresh_s = 0.0  # a worker re-reads the tenant's settings at once ([serving] sync_s)
    cfg = c.app.state.service.engine.config.planner
    configured = {
        "route_overhead": cfg.route_overhead,
        "route_spread": list(cfg.route_spread),
        "source": "configured",
        "needed": MIN_SAMPLES,
    }
    assert c.get("/v1/gps", headers=api.h("a_read")).json() == {
        **configured,
        "samples": None,
        "on_the_way": None,
        "measured_at": None,
        "goals": [],
    }
    few = {
        "route_overhead": None,
        "quartiles": None,
        "samples": 7,
        "needed": 20,
        "measured_at": "2026-12-05T03:00:00+00:00",
    }
    api.store.put_setting(tenant_setting("tenant-a"), orjson.dumps(few).decode())
    assert c.get("/v1/gps", headers=api.h("a_read")).json() == {
        **configured,
        "samples": 7,
        "on_the_way": None,  # a measure written before students on their way were counted
        "measured_at": "2026-12-05T03:00:00Z",
        "goals": [],
    }
    for who in ("a_all", "b_all"):
        assert c.put("/v1/learners/s1/goal", json={"standards": ["4.NF.B.3"]}, headers=api.h(who)).status_code == 200
    before = c.get("/v1/learners/s1/profile", headers=api.h()).json()["gps"]
    assert before["route_overhead"] == 3.0 and before["estimated_activities"] > 0
    measured = {
        "route_overhead": 1.5,
        "quartiles": [1.1, 2.0],
        "samples": 40,
        "on_the_way": 12,
        "measured_at": "2026-12-06T03:00:00+00:00",
    }
    api.store.put_setting(tenant_setting("tenant-a"), orjson.dumps(measured).decode())
    after = c.get("/v1/learners/s1/profile", headers=api.h()).json()["gps"]
    assert after["route_overhead"] == 1.5
    low, high = after["estimated_days_range"]  # the quartiles over the median: 1.1 / 1.5 and 2.0 / 1.5
    assert low == pytest.approx(after["estimated_days"] * 1.1 / 1.5, abs=0.02)
    assert high == pytest.approx(after["estimated_days"] * 2.0 / 1.5, abs=0.02)
    assert after["estimated_activities"] == pytest.approx(before["estimated_activities"] / 2, abs=0.1)
    other = c.get("/v1/learners/s1/profile", headers=api.h("b_all")).json()["gps"]
    assert other["route_overhead"] == 3.0 and other["estimated_activities"] == before["estimated_activities"]
    assert c.get("/v1/gps", headers=api.h("a_read")).json() == {
        "route_overhead": 1.5,
        "route_spread": [pytest.approx(1.1 / 1.5), pytest.approx(2.0 / 1.5)],
        "source": "measured",
        "samples": 40,
        "on_the_way": 12,
        "needed": MIN_SAMPLES,
        "measured_at": "2026-12-06T03:00:00Z",
        "goals": [],
    }
    assert c.get("/v1/gps", headers=api.h("b_all")).json()["source"] == "configured"
    # the student's GPS page says which overhead it counted
    from .test_ui import sign_in

    assert sign_in(api, api.keys["a_teacher"]).status_code == 303
    page = " ".join(c.get("/ui/learners/s1").text.split())
    assert "counted as 1.5 times that cost (measured on this school's students who reached their goals)" in page
    # a goal enough students reached counts its own; another goal, the tenant's
    own = {"route_overhead": 2.5, "quartiles": [2.0, 3.5], "samples": 25, "on_the_way": 3}
    api.store.put_setting(tenant_setting("tenant-a"), orjson.dumps({**measured, "goals": {"4.NF.B.3": own}}).decode())
    assert c.get("/v1/learners/s1/profile", headers=api.h()).json()["gps"]["route_overhead"] == 2.5
    assert c.put("/v1/learners/s2/goal", json={"standards": ["5.NF.B.3"]}, headers=api.h()).status_code == 200
    assert c.get("/v1/learners/s2/profile", headers=api.h()).json()["gps"]["route_overhead"] == 1.5
    assert c.get("/v1/gps", headers=api.h("a_read")).json()["goals"] == [
        {
            "goal": ["4.NF.B.3"],
            "route_overhead": 2.5,
            "route_spread": [pytest.approx(0.8), pytest.approx(1.4)],
            "source": "measured",
            "samples": 25,
        }
    ]
    page = " ".join(c.get("/ui/learners/s1").text.split())
    assert "counted as 2.5 times that cost (measured on this school's students who reached this goal)" in page


@pytest.mark.slow  # two nights of a school planned as a Ray task plans them, a student brought to the goal
def test_two_nights_of_a_school_measure_a_student_s_arrival(tmp_path, shared_engine) -> None:
    import time
    from pathlib import Path

    from typer.testing import CliRunner

    from configs import load_config
    from serving.app import build_engine
    from serving.batch import plan_school
    from serving.deployment import Deployment
    from serving.stores import open_store
    from zpd.cli import app

    from .conftest import make_api

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    school = Path(__file__).resolve().parent.parent / "data" / "oneroster_school"
    assert (
        CliRunner().invoke(app, ["roster", "import", str(school), "--tenant", "school", "--store", url]).exit_code == 0
    )
    config = load_config(env={})
    store = open_store(url)
    Deployment(build_engine(config), store).set_model("bkt")  # what the API below serves
    api = make_api(store, shared_engine)
    from serving.auth import create_key

    h = {"Authorization": f"Bearer {create_key(store, 'school', ['ingest', 'read', 'teacher', 'admin'])}"}
    with api.client as c:
        for student in ("stu-1000", "stu-1001"):
            assert c.put(f"/v1/learners/{student}/goal", json={"standards": ["3.OA.A.1"]}, headers=h).status_code == 200
        night = [config.model_dump_json(), url, "school", "2026-12-01", "org-school-7", ["class-4a"]]
        assert plan_school(*night)[0] == ["class-4a"]
        anchor = record(store, "org-school-7", "school")["anchors"]["stu-1000"]
        assert anchor["goal"] == ["3.OA.A.1"] and anchor["activities"] == 0 and anchor["once"] > 0
        # a student erased leaves no anchor behind
        assert "stu-1001" in record(store, "org-school-7", "school")["anchors"]
        assert c.delete("/v1/learners/stu-1001", headers=h).status_code == 200
        assert "stu-1001" not in record(store, "org-school-7", "school")["anchors"]
        start = time.time() - 3600
        for i in range(300):  # right answers on what the planner offers, until the GPS says reached
            item = c.get("/v1/learners/stu-1000/next", headers=h).json()["recommendations"][0]["item"]["id"]
            event = {"id": f"e{i}", "learner_id": "stu-1000", "item_id": item, "correct": True, "timestamp": start + i}
            assert c.post("/v1/events", json=[event], headers=h).status_code == 200
            if c.get("/v1/learners/stu-1000/profile", headers=h).json()["gps"]["status"] == "reached":
                break
        else:
            pytest.fail("300 right answers did not reach a one-standard goal")
        assert plan_school(*night[:3], "2026-12-02", *night[4:])[0] == ["class-4a"]
        kept = record(store, "org-school-7", "school")
        assert kept["anchors"] == {} and kept["samples"] == [
            {"date": "2026-12-02", "overheads": [round((i + 1) / anchor["once"], 3)], "goal": "3.OA.A.1"}
        ]
        assert measure(store, "school", ["org-school-7"])["samples"] == 1
    store.close()


def test_a_measure_the_server_cannot_read_leaves_the_configured_overhead(api, caplog) -> None:
    """A ``gps@TENANT`` setting that is not what `zpd plan-batch` writes (edited by hand, or from
    another version) is named once in the log; the GPS keeps counting the configured overhead."""
    c = api.client
    c.app.state.service.content.refresh_s = 0.0
    assert c.put("/v1/learners/s1/goal", json={"standards": ["4.NF.B.3"]}, headers=api.h()).status_code == 200
    api.store.put_setting(tenant_setting("tenant-a"), orjson.dumps({"overhead": 2}).decode())
    with caplog.at_level("WARNING", logger="serving.content"):
        for _ in range(2):
            gps = c.get("/v1/learners/s1/profile", headers=api.h())
            assert gps.status_code == 200 and gps.json()["gps"]["route_overhead"] == 3.0
    assert [r.getMessage()[:40] for r in caplog.records] == ["store setting gps@tenant-a is not a GPS "]


def test_survival_quantiles_without_students_on_their_way_are_the_sample_s() -> None:
    for values in ([3.0], [2.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0], [1.5, 1.5, 2.0, 7.0, 3.25, 3.25]):
        assert survival_quantiles(values, [], (0.5,)) == [statistics.median(values)]


def test_survival_quantiles_count_the_students_on_their_way_as_later() -> None:
    # arrivals at 1, 2, 3 and 4; on their way past 2.5, 5, 6 and 7 (eight students):
    # after 1, 7/8 are left; after 2, 3/4 (exactly: the quarter lies between 2 and 3); 2.5 leaves
    # the count; after 3, 3/4 x 4/5 = 0.6; after 4, 0.6 x 3/4 = 0.45: the median is 4, where the
    # arrivals alone say 2.5; a quarter is never left: the upper quartile is not known yet
    assert survival_quantiles([1.0, 2.0, 3.0, 4.0], [2.5, 5.0, 6.0, 7.0], (0.25, 0.5, 0.75)) == [2.5, 4.0, None]
    # an arrival and a bound at the same value: the arrival comes first (the bound was still on its way)
    assert survival_quantiles([2.0], [2.0], (0.5,)) == [2.0]
    assert survival_quantiles([], [1.0, 2.0], (0.5,)) == [None]


def arrivals(store, school: str, activities: list[int], start: int = 0, goal: tuple[str, ...] = GOAL) -> None:
    """Students who reach ``goal`` (10 activities to master it once) after these activities."""
    for k, done in enumerate(activities, start):
        observe(store, "t", school, "2026-12-01", {f"a{k}": (status("on_track", goal=goal), 0)})
        observe(store, "t", school, "2026-12-20", {f"a{k}": (status("reached", goal=goal), done)})


def test_students_on_their_way_count_in_the_tenant_s_measure(store) -> None:
    """The first to arrive are the fast ones: the students still on their way, each counted as
    "more than what they have done", move the median where the arrivals alone would not."""
    arrivals(store, "north", [10 + k for k in range(MIN_SAMPLES)])  # overheads 1.0 to 2.9
    alone = measure(store, "t", ["north"])
    assert alone["route_overhead"] == 1.95 and alone["on_the_way"] == 0
    slow = {f"s{k}": (status("on_track"), 0) for k in range(30)}
    observe(store, "t", "north", "2026-12-01", slow)
    observe(store, "t", "north", "2026-12-20", {k: (status("at_risk"), 30) for k in slow})  # past 3.0 by now
    measured = measure(store, "t", ["north"])
    assert measured["samples"] == MIN_SAMPLES and measured["on_the_way"] == 30
    # 50 students, and the 20 arrivals are all below what the 30 others have done: more than half
    # are not there yet, so the median is not known
    assert measured["route_overhead"] is None
    arrivals(store, "south", [35] * 4, start=100)  # four of the slow kind arrive, at 3.5
    measured = measure(store, "t", ["north", "south"])
    # 54 students: 14 arrivals leave 40/54 < 3/4 (the lower quartile, 2.3); the median is 3.5
    assert measured["route_overhead"] == 3.5 and measured["quartiles"] == [2.3, 3.5]
    assert measured["samples"] == MIN_SAMPLES + 4 and measured["on_the_way"] == 30


def test_an_unknown_upper_quartile_keeps_the_configured_upper_factor() -> None:
    configured = PlannerConfig(route_spread=(0.7, 1.5))
    assert planner_settings({"route_overhead": 3.0, "quartiles": [1.5, None]}, configured) == {
        "route_overhead": 3.0,
        "route_spread": (0.5, 1.5),
    }
    cfg = PlannerConfig()  # what the tenant's core is built with (LearnerService.core)
    assert cfg.model_copy(update=planner_settings({"route_overhead": 2.0, "quartiles": [1.0, None]}, cfg))


def test_a_goal_enough_students_reached_counts_its_own_overhead(store) -> None:
    """Goals differ (the GPS benchmark: 2.2 to 3.6): a goal with MIN_SAMPLES arrivals of its own
    is measured on them; the tenant's overhead pools every goal's, for the others."""
    fractions, ratios, rare = ("4.NF",), ("6.RP",), ("7.G",)
    arrivals(store, "north", [20 + k for k in range(MIN_SAMPLES)], goal=fractions)  # 2.0 to 3.9
    arrivals(store, "south", [40 + k for k in range(MIN_SAMPLES)], start=100, goal=ratios)  # 4.0 to 5.9
    arrivals(store, "south", [90, 95], start=200, goal=rare)
    measured = measure(store, "t", ["north", "south"])
    assert measured["samples"] == 2 * MIN_SAMPLES + 2 and measured["route_overhead"] == 4.05  # pooled
    assert {goal: m["route_overhead"] for goal, m in measured["goals"].items()} == {"4.NF": 2.95, "6.RP": 4.95}
    assert measured["goals"]["6.RP"]["samples"] == MIN_SAMPLES
    configured = PlannerConfig(goal_route={"8.EE": (2.5, 0.8, 1.4)})
    settings = planner_settings(measured, configured)
    assert settings is not None and set(settings["goal_route"]) == {"4.NF", "6.RP", "8.EE"}  # over the configured
    low, high = measured["goals"]["4.NF"]["quartiles"]
    assert settings["goal_route"]["4.NF"] == (2.95, low / 2.95, high / 2.95)
    assert configured.model_copy(update=settings).goal_route["6.RP"][0] == 4.95


def test_a_goal_route_set_by_hand_must_make_sense() -> None:
    assert PlannerConfig(goal_route={"4.NF+4.OA": (2.0, 0.7, 1.5)}).goal_route["4.NF+4.OA"] == (2.0, 0.7, 1.5)
    for bad in ((0.0, 0.7, 1.5), (2.0, 1.2, 1.5), (2.0, 0.7, 0.9)):
        with pytest.raises(ValueError, match="goal_route"):
            PlannerConfig(goal_route={"4.NF": bad})


def test_a_student_no_longer_planned_becomes_a_bound_and_old_samples_go(store) -> None:
    observe(store, "t", "north", "2026-01-05", {"gone": (status("on_track"), 0), "stays": (status("on_track"), 0)})
    observe(store, "t", "north", "2026-01-10", {"gone": (status("on_track"), 12), "stays": (status("on_track"), 1)})
    observe(store, "t", "north", "2026-02-01", {"stays": (status("reached"), 20)})
    # STALE_DAYS after the last night "gone" was planned with the goal: no longer watched
    late = (dt.date(2026, 1, 10) + dt.timedelta(days=STALE_DAYS + 1)).isoformat()
    observe(store, "t", "north", late, {})
    kept = record(store)
    assert kept["anchors"] == {}
    assert kept["samples"] == [
        {"date": "2026-02-01", "overheads": [2.0], "goal": "4.NF.A.1"},
        {"date": "2026-01-10", "overheads": [1.2], "goal": "4.NF.A.1", "censored": True},
    ]
    assert measure(store, "t", ["north"]).items() >= {"samples": 1, "on_the_way": 1}.items()
    # a year on, both describe another year
    observe(store, "t", "north", (dt.date(2026, 2, 1) + dt.timedelta(days=SAMPLE_DAYS + 1)).isoformat(), {})
    assert record(store)["samples"] == []


def test_the_gps_page_says_where_a_goal_s_overhead_comes_from() -> None:
    from serving.ui.pages import _overhead_source

    calibration = {
        "source": "measured",
        "goals": [
            {"goal": ["4.NF"], "source": "measured"},
            {"goal": ["6.RP", "6.EE"], "source": "configured"},  # set in the deployment's configuration
        ],
    }
    assert _overhead_source(calibration, ("4.NF",)) == "goal"
    assert _overhead_source(calibration, ("6.EE", "6.RP")) == "set"
    assert _overhead_source(calibration, ("5.NF",)) == "school"
    assert _overhead_source({**calibration, "source": "configured"}, ("5.NF",)) is None


def test_a_student_of_two_schools_counts_in_one() -> None:
    """Each school's nightly task observes its classes; a student in classes of two schools would
    arrive twice, so only the first of their schools (by id) counts them."""
    from engine.roster import Roster
    from serving.batch import home_school

    def enrolled(key: str, class_id: str, user: str) -> tuple[str, str, dict]:
        return ("enrollments", key, {"class": class_id, "user": user, "role": "student", "primary": False})

    def course(class_id: str, school: str) -> tuple[str, str, dict]:
        return ("classes", class_id, {"title": class_id, "code": "", "grades": ["4"], "school": school, "sessions": []})

    roster = Roster.from_records(
        [
            course("math-north", "school-north"),
            course("art-south", "school-south"),
            enrolled("e1", "math-north", "both"),
            enrolled("e2", "art-south", "both"),
            enrolled("e3", "art-south", "south-only"),
        ]
    )
    assert home_school(roster, "both") == "school-north"
    assert home_school(roster, "south-only") == "school-south"
