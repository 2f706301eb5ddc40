"""The planner we serve is the planner we evaluate: over real HTTP, with the model ``make serve``
loads (the bundled one), a learner's grade gives the starting belief, a learner the server has
never seen gets recommendations, and the API and the simulator's ``zpd`` policy recommend the
same activities step by step for the same events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs import load_config
from engine.placement import PlacementConfig
from engine.planner.policy import ZPDPolicy
from engine.simulation import Outcome
from models.registry import for_graph
from serving.app import build_engine, create_app
from serving.auth import create_key
from serving.service import LearnerService, learner_seed
from serving.stores import open_store
from serving.views import recommendation_json

from .conftest import LiveServer

pytestmark = pytest.mark.slow  # the API over real HTTP

T0 = 1_790_000_000.0  # 2026-09-21, seconds: the simulated clock starts here


@dataclass
class Served:
    url: str
    headers: dict[str, str]
    app: object
    now: list[float]

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(self.url + path, params=params, headers=self.headers, timeout=30)

    def post(self, path: str, body) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self.headers, timeout=30)

    def put(self, path: str, body) -> httpx.Response:
        return httpx.put(self.url + path, json=body, headers=self.headers, timeout=30)


@pytest.fixture(scope="module")
def bundled_engine():
    engine = build_engine(load_config(env={}), model_uri="bundled")
    assert engine.models.current.model.name == "hybrid"  # what `make serve` serves without a registry
    return engine


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_engine) -> Iterator[Served]:
    """The API over real HTTP on the bundled model, with a clock the test sets (simulated time)."""
    folder = tmp_path_factory.mktemp("core")
    store = open_store(f"sqlite:///{(Path(folder) / 'zpd.db').as_posix()}")
    key = create_key(store, "school", ["ingest", "read", "teacher", "admin"])
    app = create_app(load_config(env={}), store=store, engine=bundled_engine)
    server = LiveServer(app)
    now = [T0]
    app.state.service.clock = lambda: now[0]
    try:
        yield Served(server.url, {"Authorization": f"Bearer {key}"}, app, now)
    finally:
        server.stop()
        store.close()


def grade_of(served: Served, code: str) -> str:
    return served.get(f"/v1/standards/{code}").json()["grade"]


def test_a_grade_4_learner_starts_at_grade_4_and_is_pulled_back_when_struggling(served, bundled_engine) -> None:
    assert served.post("/v1/learners/g4", {"grade": "4"}).status_code == 200
    nxt = served.get("/v1/learners/g4/next", n=5).json()
    standards = [r["standard"] for r in nxt["recommendations"]]
    assert len(standards) == 5
    assert {grade_of(served, c) for c in standards} <= {"3", "4"}, standards
    playlist = served.post("/v1/learners/g4/playlist", {"session_minutes": 60}).json()
    assert playlist["activities"]
    assert {grade_of(served, a["standard"]) for a in playlist["activities"]} <= {"3", "4"}
    # a run of failures on a grade-3 standard: its prerequisites (or theirs, the weakest link of
    # the chain under it) come next, at once
    struggling = next(c for c in standards if grade_of(served, c) == "3")
    prerequisites = nx.ancestors(bundled_engine.graph.learning, struggling)
    assert prerequisites
    items = [
        i["id"]
        for i in served.get("/v1/items", standard=struggling, limit=50).json()["items"]
        if not i["mastery_check"]
    ]
    events = [
        {
            "id": f"g4-f{k}",
            "learner_id": "g4",
            "item_id": items[k % len(items)],
            "correct": False,
            "timestamp": T0 + 600 * k,
        }
        for k in range(4)
    ]
    assert served.post("/v1/events", events).json()["accepted"] == 4
    after = served.get("/v1/learners/g4/next", n=5).json()
    pulled_back = {r["standard"] for r in after["recommendations"]} & prerequisites
    assert pulled_back, (struggling, prerequisites, [r["standard"] for r in after["recommendations"]])
    assert any(f["standard"] == struggling and f["remediation"] in prerequisites for f in after["flags"])
    # the GPS route of a grade-4 learner does not start in kindergarten
    served.put("/v1/learners/g4/goal", {"standards": ["4.NF.B.3", "4.NBT.B.5"]})
    gps = served.get("/v1/learners/g4/profile").json()["gps"]
    assert gps["route"] and not any(grade_of(served, c) in ("K", "1") for c in gps["route"])


def test_next_for_a_learner_the_server_has_never_seen(served) -> None:
    r = served.get("/v1/learners/never-seen/next", n=5, grade="4")
    assert r.status_code == 200
    recs = r.json()["recommendations"]
    assert len(recs) == 5 and {grade_of(served, x["standard"]) for x in recs} <= {"3", "4"}
    plain = served.get("/v1/learners/never-seen-2/next", n=3)
    assert plain.status_code == 200 and len(plain.json()["recommendations"]) == 3
    assert served.get("/v1/learners/never-seen/profile").status_code == 404  # a read stores nothing
    bad = served.get("/v1/learners/never-seen/next", grade="Z9")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "query.grade"


# ---------------------------------------------------------------------------- API == simulator policy
steps = st.lists(st.tuples(st.booleans(), st.integers(0, 10_000), st.booleans()), min_size=1, max_size=14)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=steps,
    grade=st.sampled_from(["3", "4", "6", None]),
    diagnostic=st.booleans(),
    goal=st.sampled_from([("4.NF.B.3", "4.NBT.B.5"), ("5.NF.A.1",), None]),
)
def test_the_api_and_the_simulator_policy_recommend_the_same(
    served, bundled_engine, steps, grade, diagnostic, goal
) -> None:
    """Random event sequences go through the HTTP API and through the simulator's zpd policy
    (``zpd simulate``'s factory, on the served model): the same activity at every step. Each step
    either follows the recommendation or answers a random catalog item, right or wrong."""
    global _learners
    _learners += 1
    lid = f"eq-{_learners}"
    config = load_config(env={})
    graph, catalog = bundled_engine.graph, bundled_engine.catalog
    model = bundled_engine.models.current.model
    placement = PlacementConfig() if diagnostic else None
    policy = ZPDPolicy(lambda g: for_graph(model, g), config.planner, placement, grade, diagnostic_focus="graph")
    policy.start(graph, catalog, list(goal or ()), np.random.default_rng(0))
    policy.learner.meta.seed = learner_seed("school", lid)  # the server's stream for this learner
    if goal is None:
        policy.learner.meta.goal = None
    served.now[0] = T0
    if grade is not None:
        assert served.post(f"/v1/learners/{lid}", {"grade": grade}).status_code == 200
    if goal is not None:
        assert served.put(f"/v1/learners/{lid}/goal", {"standards": list(goal)}).status_code == 200
    if diagnostic:
        assert served.post(f"/v1/learners/{lid}/placement", {}).status_code == 200
    items = list(catalog)
    for k, (follow, pick, correct) in enumerate(steps):
        chosen = policy.choose()
        if policy.last_choice_diagnostic:
            status = served.post(f"/v1/learners/{lid}/placement", {}).json()
            assert status["question"]["item"]["id"] == chosen, k
            unit = status["question"]["standard"]
            answer = served.post(
                f"/v1/learners/{lid}/placement/answers",
                {"standard": unit, "correct": correct, "event_id": f"{lid}-p{k}"},
            )
            assert answer.status_code == 200, answer.text
            served.now[0] += 600
            policy.observe(chosen, Outcome(correct, 10.0, served.now[0] / 60.0))
            continue
        api = served.get(f"/v1/learners/{lid}/next", n=5, alternatives=2).json()["recommendations"]
        assert [r["item"]["id"] for r in api[:1]] == [chosen], (k, chosen, api)
        # the whole answer, not only the first choice: the same learner state on both sides
        mine = policy.core.recommend(policy.learner, served.now[0], n=5, k_alternatives=2).recommendations
        assert [_summary(r) for r in api] == [_summary(recommendation_json(r)) for r in mine], k
        item = chosen if follow else items[pick % len(items)].id
        served.now[0] += 600
        r = served.post(
            "/v1/events",
            {"id": f"{lid}-{k}", "learner_id": lid, "item_id": item, "correct": correct, "timestamp": served.now[0]},
        )
        assert r.status_code == 200, r.text
        policy.observe(item, Outcome(correct, 10.0, served.now[0] / 60.0))
    final = served.get(f"/v1/learners/{lid}/next", n=1, alternatives=0).json()["recommendations"]
    if not policy.core.placement_question(policy.learner):
        assert [r["item"]["id"] for r in final] == [policy.choose()]


_learners = 0


def _summary(r: dict) -> tuple:
    return (
        r["item"]["id"],
        r["standard"],
        r["kind"],
        r["p_success"],
        r["score"],
        tuple(a["item"]["id"] for a in r["alternatives"]),
    )


def test_one_learner_core_per_content_none_kept_over_a_replaced_model(bundled_engine, tmp_path: Path) -> None:
    """The core (and the caches it keeps, a grade's starting state) lives as long as what the
    tenant sees; a model swap gives a new one, and nothing over the old model is kept."""
    with open_store(f"sqlite:///{tmp_path / 'z.db'}") as store:
        service = LearnerService(bundled_engine, store)
        first = service.core("t1")
        assert service.core("t1") is first and service.core("t2") is first  # no content of their own
        first.new(0, "4")
        assert 4.0 in first._primed
        old = bundled_engine.models.current
        bundled_engine.models.current = replace(old, version="swapped")
        try:
            second = service.core("t1")
            assert second is not first and second.model_version == "swapped" and not second._primed
            assert all(c.loaded is bundled_engine.models.current for c in service.content._cache.values())
        finally:
            bundled_engine.models.current = old
