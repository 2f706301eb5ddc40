"""A small literal world: A -> B -> C (grades 1, 2, 3), D independent, items on each."""

from __future__ import annotations

import numpy as np
import pytest

from configs import PlannerConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.planner.context import PlanContext
from engine.planner.index import PlannerIndex
from engine.planner.progress import Progress
from models.base import ItemSpec
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
    """A planner context backed by a real GraphBKT, with helpers to feed it attempts."""

    def __init__(self, index: PlannerIndex, config: PlannerConfig, **context):
        self.model = GraphBKT.from_graph(index.graph)
        self.state = self.model.init_state()
        self.index, self.config = index, config
        self.progress = Progress()
        self.context = context

    def predict(self, items):
        return self.model.predict_items(self.state, [ItemSpec(i.id, i.standards, i.difficulty) for i in items])

    def ctx(self, now: float = 0.0, **overrides) -> PlanContext:
        fields = {**self.context, **overrides}
        return PlanContext(
            self.index,
            self.config,
            self.model.mastery(self.state),
            self.predict,
            self.progress,
            now=now,
            rng=fields.pop("rng", np.random.default_rng(0)),
            **fields,
        )

    def attempt(self, item_id: str, correct: bool, time: float = 0.0) -> list[str]:
        from engine.planner.progress import Attempt, record_attempt
        from models.base import Event

        item = self.index.catalog[item_id]
        self.state = self.model.update(self.state, Event(item_id, item.standards, float(correct), time))
        return record_attempt(
            self.progress,
            Attempt(item_id, self.index.item_units[item_id], float(correct), time, item.mastery_check),
            self.model.mastery(self.state),
            self.index.prereqs,
            self.config,
        )


@pytest.fixture()
def index() -> PlannerIndex:
    graph, catalog = world()
    return PlannerIndex.build(graph, catalog)


@pytest.fixture()
def config() -> PlannerConfig:
    return PlannerConfig(exploration=0.0, struggle_failures=2)


@pytest.fixture()
def learner(index, config) -> Learner:
    return Learner(index, config)
