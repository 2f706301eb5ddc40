"""A small literal world: A -> B -> C (grades 1, 2, 3), D independent, items on each."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from configs import PlannerConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.learner import LearnerCore, Observation
from engine.planner.context import PlanContext
from engine.planner.index import PlannerIndex
from engine.planner.progress import Progress
from models.bkt import GraphBKT


def world() -> tuple[StandardsGraph, Catalog]:
    graph = StandardsGraph(
        [
            Standard("A", grade="1", grade_num=1),
            Standard("B", grade="2", grade_num=2),
            Standard("C", grade="3", grade_num=3),
            Standard("D", grade="1", grade_num=1),
        ],
        [("A", "B"), ("B", "C")],
    )
    items = []
    for code in "ABCD":
        items += [
            Item(f"{code}-p1", f"{code} practice 1", (code,), Modality.ONLINE_PRACTICE, 10, 0.4, tags=("sports",)),
            Item(f"{code}-p2", f"{code} practice 2", (code,), Modality.ONLINE_PRACTICE, 10, 0.6, tags=("music",)),
            Item(f"{code}-read", f"{code} reading", (code,), Modality.READING, 5),
            Item(f"{code}-check", f"{code} check", (code,), Modality.ASSESSMENT, 10, mastery_check=True),
            Item(f"{code}-group", f"{code} small group", (code,), Modality.SMALL_GROUP, 20),
            Item(f"{code}-tutor", f"{code} tutoring", (code,), Modality.TUTORING, 15),
        ]
    items.append(Item("AB-mixed", "A and B together", ("A", "B"), Modality.ONLINE_PRACTICE, 10))
    return graph, Catalog(items)


class Learner:
    """A learner of the learner core (engine/learner.py) over a real GraphBKT, with helpers to feed
    it attempts and to build its planning context: the planner tests go through the same "a
    learner answered" as the API and the simulator."""

    def __init__(self, index: PlannerIndex, config: PlannerConfig, **context):
        self.core = LearnerCore(index, config, GraphBKT.from_graph(index.graph))
        self.learner = self.core.new(seed=0)
        self.index, self.model = index, self.core.model
        self.context = context

    @property
    def config(self) -> PlannerConfig:
        return self.core.config

    @config.setter
    def config(self, value: PlannerConfig) -> None:
        self.core.config = value

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self.learner.state

    @state.setter
    def state(self, value: dict[str, np.ndarray]) -> None:
        self.learner.state = value

    @property
    def progress(self) -> Progress:
        return self.learner.progress

    def ctx(self, now: float = 0.0, **overrides) -> PlanContext:
        """The core's context at ``now``, with the test's fields (goal, overrides, level...) and a
        fixed random stream unless one is given."""
        fields = {**self.context, **overrides}
        fields.setdefault("rng", np.random.default_rng(0))
        return replace(self.core.context(self.learner, now), **fields)

    def attempt(self, item_id: str, correct: bool, time: float = 0.0) -> list[str]:
        item = self.index.catalog[item_id]
        return self.core.observe(self.learner, Observation(item_id, item.standards, float(correct), time))


@pytest.fixture()
def index() -> PlannerIndex:
    graph, catalog = world()
    return PlannerIndex.build(graph, catalog)


@pytest.fixture()
def config() -> PlannerConfig:
    # the tests set a learner's state by hand, not by answers: no entry diagnostic is planned
    # for them (tests of it turn it on)
    return PlannerConfig(exploration=0.0, struggle_failures=2, entry_diagnostic_minutes=0)


@pytest.fixture()
def learner(index, config) -> Learner:
    return Learner(index, config)
