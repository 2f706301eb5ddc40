"""Graph-aware Bayesian Knowledge Tracing: the cold-start model that needs no training data.

Each learnable standard has a BKT knowledge probability updated by the usual posterior (slip and
guess) and learning transition. The prerequisite graph spreads evidence one hop:

* a success on a standard is evidence for its prerequisites and raises the prior of its
  dependents that have not been observed yet;
* a failure raises doubt on its prerequisites (less for well-observed ones) and lowers the
  prior of its unobserved dependents.

What spreads is the change of the standard's knowledge, evidence and learning together. So a
failure on a standard already believed below what one attempt teaches (``p_learn``) still raises it
a little, and its neighbours with it: measured in the planner's worlds, spreading the evidence alone
made correct graphs worse (docs/benchmarks/planner.md, history).

With slip + guess < 1 a correct answer never lowers any mastery (``monotonic = True``).
Sub-standards roll up: evidence on a parent standard is shared by its parts, and a parent's
mastery is the mastery of its weakest part.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from models.base import CodeRows, Event, ItemBatch, ItemSpec, LearnerModel, LearnerState, Mastery

__all__ = ["GraphBKT", "bkt_config"]

DEFAULTS: dict[str, float] = {
    "p_init": 0.2,  # prior knowledge of a standard nothing is known about
    "p_learn": 0.15,  # chance to learn from one attempt
    "p_slip": 0.1,
    "p_guess": 0.2,
    "up": 0.3,  # share of a success's gain passed to each prerequisite
    "down": 0.2,  # share of a failure's loss passed to each prerequisite
    "spread": 0.3,  # share passed to each unobserved dependent
    "difficulty_logit": 1.5,  # logit shift between difficulty 0.5 and 0 (or 1)
}


def bkt_config(
    standards: Sequence[str],
    edges: Sequence[tuple[str, str]] = (),
    parts: Mapping[str, Sequence[str]] | None = None,
    **params: float,
) -> dict[str, Any]:
    """A JSON-ready config: the standards, the learning-graph edges between learnable
    standards, the parts of each parent standard, and BKT parameters (defaults in ``DEFAULTS``)."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown BKT parameter(s) {', '.join(sorted(unknown))}; expected {', '.join(DEFAULTS)}")
    return {
        "standards": list(standards),
        "edges": [list(e) for e in edges],
        "parts": {p: list(c) for p, c in (parts or {}).items()},
        "params": {**DEFAULTS, **params},
    }


class GraphBKT(LearnerModel):
    """BKT over the learnable standards of a graph, with one-hop evidence propagation.

    >>> model = GraphBKT(bkt_config(["A", "B"], edges=[("A", "B")]))
    >>> state = model.update(model.init_state(), Event("i1", ("B",), 1.0))
    >>> model.mastery(state)["A"] > 0.2  # success on B is evidence for its prerequisite A
    True
    """

    name = "bkt"
    monotonic = True

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        params = {**DEFAULTS, **self.config.get("params", {})}
        self.config["params"] = params
        self.p = params
        if params["p_slip"] + params["p_guess"] >= 1:
            raise ValueError("p_slip + p_guess must be < 1, or a correct answer would count against mastery")
        n = len(self.standards)
        idx = self.standard_index
        parts = {idx[p]: [idx[c] for c in kids] for p, kids in self.config.get("parts", {}).items()}
        self._leaves = [self._leaf_indices(i, parts) for i in range(n)]
        width = max((len(leaves) for leaves in self._leaves), default=1)
        # padded with each row's first leaf so a row-wise min is the weakest part
        self._leaf_matrix = np.array(
            [leaves + leaves[:1] * (width - len(leaves)) for leaves in self._leaves], dtype=np.int64
        ).reshape(n, width)
        # the standards with parts and their leaves (a standard without parts is its own leaf)
        self._compound = np.array([i for i, leaves in enumerate(self._leaves) if leaves != [i]], dtype=np.int64)
        self._compound_leaves = self._leaf_matrix[self._compound]
        self._is_leaf = np.ones(n, dtype=bool)
        self._is_leaf[self._compound] = False
        self._code_rows = CodeRows(idx)
        prereqs: list[list[int]] = [[] for _ in range(n)]
        dependents: list[list[int]] = [[] for _ in range(n)]
        for a, b in self.config.get("edges", []):
            prereqs[idx[b]].append(idx[a])
            dependents[idx[a]].append(idx[b])
        self._prereqs = [np.array(p, dtype=np.int64) for p in prereqs]
        self._dependents = [np.array(d, dtype=np.int64) for d in dependents]
        self._model_id = id(self)

    @staticmethod
    def _leaf_indices(i: int, parts: dict[int, list[int]]) -> list[int]:
        if i not in parts:
            return [i]
        return [leaf for part in parts[i] for leaf in GraphBKT._leaf_indices(part, parts)]

    # ------------------------------------------------------------------ state
    def init_state(self) -> LearnerState:
        n = len(self.standards)
        return {"p": np.full(n, self.p["p_init"]), "n": np.zeros(n, dtype=np.float64)}

    def update(self, state: LearnerState, event: Event) -> LearnerState:
        leaves = sorted({leaf for i in self.standard_indices(event.standards) for leaf in self._leaves[i]})
        p, n = state["p"].copy(), state["n"].copy()
        if not leaves:
            return {"p": p, "n": n}
        c = min(max(float(event.correct), 0.0), 1.0)
        slip, guess, learn = self.p["p_slip"], self.p["p_guess"], self.p["p_learn"]
        before = p[leaves]
        post_right = before * (1 - slip) / (before * (1 - slip) + (1 - before) * guess)
        post_wrong = before * slip / (before * slip + (1 - before) * (1 - guess))
        post = c * post_right + (1 - c) * post_wrong
        after = post + (1 - post) * learn
        p[leaves] = after
        n[leaves] += 1
        for leaf, delta in zip(leaves, after - before):
            self._spread(p, n, leaf, float(delta))
        return {"p": p, "n": n}

    def _spread(self, p: np.ndarray, n: np.ndarray, leaf: int, delta: float) -> None:
        pre, dep = self._prereqs[leaf], self._dependents[leaf]
        dep = dep[n[dep] == 0] if dep.size else dep
        if delta > 0:
            if pre.size:
                p[pre] += self.p["up"] * delta * (1 - p[pre])
            if dep.size:
                p[dep] += self.p["spread"] * delta * (1 - p[dep])
        elif delta < 0:
            if pre.size:
                p[pre] += self.p["down"] * delta * p[pre] / (1 + n[pre])
            if dep.size:
                p[dep] += self.p["spread"] * delta * p[dep]

    def state_with_prior_values(
        self, codes: Sequence[str], values: np.ndarray, state: LearnerState | None = None
    ) -> LearnerState:
        """A standard's prior sets the knowledge of each of its leaves (its parts, or itself)."""
        state = self.init_state() if state is None else {k: v.copy() for k, v in state.items()}
        src, rows, unique = self._code_rows(codes)
        given = values[src]
        ok = ~np.isnan(given)
        rows, given = rows[ok], given[ok]
        if not unique or not self._is_leaf[rows].all():  # parts, or a code twice: the last value per leaf
            found: dict[int, float] = {}
            for i, value in zip(rows.tolist(), given.tolist()):
                for leaf in self._leaves[i]:
                    found[leaf] = value
            rows = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
            given = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        if len(rows):
            state["p"][rows] = np.clip(given, 1e-4, 1 - 1e-4)
        return state

    # ------------------------------------------------------------------ prediction
    def item_key(self, item: ItemSpec) -> Hashable:
        return item.standards, item.difficulty  # what encode_items reads: no parameter of an item's own

    def encode_items(self, items: Sequence[ItemSpec]) -> ItemBatch:
        """Items become groups (one per aligned standard) of leaf indices; P(know item) is the
        product over its standards of the mean knowledge of each standard's parts."""
        groups: list[list[int]] = []
        owner: list[int] = []
        difficulty = np.zeros(len(items))
        for row, item in enumerate(items):
            for i in self.standard_indices(item.standards):
                groups.append(self._leaves[i])
                owner.append(row)
            if item.difficulty is not None:
                difficulty[row] = self.p["difficulty_logit"] * (0.5 - item.difficulty) * 2
        width = max((len(g) for g in groups), default=1)
        index = np.zeros((len(groups), width), dtype=np.int64)
        weight = np.zeros((len(groups), width))
        for r, g in enumerate(groups):
            index[r, : len(g)] = g
            weight[r, : len(g)] = 1.0 / len(g)
        known = np.zeros(len(items), dtype=bool)
        known[owner] = True
        owners = np.array(owner, dtype=np.int64)
        count = np.bincount(owners, minlength=len(items))
        return ItemBatch(
            self._model_id,
            tuple(i.item_id for i in items),
            {
                "index": index,
                "weight": weight,
                "owner": owners,
                "shift": difficulty,
                "known": known,
                # each item's first group row and number of groups (what ``take`` cuts by)
                "start": np.cumsum(count) - count,
                "count": count,
            },
        )

    def predict(self, state: LearnerState, items: ItemBatch) -> np.ndarray:
        a = items.arrays
        return self._p_correct(state["p"], a["index"], a["weight"], a["owner"], a["known"], a["shift"])

    def predict_at(self, state: LearnerState, items: ItemBatch, positions: np.ndarray) -> np.ndarray:
        """``predict(state, take(items, positions))`` without building the batch (a request
        predicts its candidates once, and the batch's bookkeeping cost as much as the arithmetic)."""
        if not len(positions):
            return np.empty(0)
        a = items.arrays
        rows, owner = self._rows(a, positions)
        return self._p_correct(
            state["p"], a["index"][rows], a["weight"][rows], owner, a["known"][positions], a["shift"][positions]
        )

    def _p_correct(
        self,
        p: np.ndarray,
        index: np.ndarray,
        weight: np.ndarray,
        owner: np.ndarray,
        known: np.ndarray,
        shift: np.ndarray,
    ) -> np.ndarray:
        """P(correct) of items whose groups (rows of ``index``/``weight``) belong to ``owner``."""
        group_know = (p[index] * weight).sum(axis=1)
        log_know = np.bincount(owner, weights=np.log(group_know), minlength=len(known))
        know = np.where(known, np.exp(log_know), self.p["p_init"])
        slip, guess = self.p["p_slip"], self.p["p_guess"]
        prob = know * (1 - slip) + (1 - know) * guess
        logit = np.log(prob / (1 - prob)) + shift
        return 1.0 / (1.0 + np.exp(-logit))

    @staticmethod
    def _rows(a: Mapping[str, np.ndarray], positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group rows of the items at ``positions`` (an item's groups are contiguous) and,
        for each row, the position in ``positions`` of the item it belongs to."""
        starts, lengths = a["start"][positions], a["count"][positions]
        if (lengths == 1).all():  # one standard per item (the usual case)
            return starts, np.arange(len(positions))
        rows = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        return rows, np.repeat(np.arange(len(positions)), lengths)

    def take(self, items: ItemBatch, positions: np.ndarray) -> ItemBatch:
        a = items.arrays
        lengths = a["count"][positions]
        rows, owner = self._rows(a, positions)
        return ItemBatch(
            items.model_id,
            tuple(map(items.item_ids.__getitem__, positions.tolist())),
            {
                "index": a["index"][rows],
                "weight": a["weight"][rows],
                "owner": owner,
                "shift": a["shift"][positions],
                "known": a["known"][positions],
                "start": np.cumsum(lengths) - lengths,
                "count": lengths,
            },
        )

    def mastery(self, state: LearnerState) -> dict[str, float]:
        p = state["p"]
        m = p.copy()
        m[self._compound] = p[self._compound_leaves].min(axis=1)
        return Mastery(self.standards, m)

    # ------------------------------------------------------------------ persistence
    def weights(self) -> dict[str, np.ndarray]:
        return {}  # everything lives in the config: no learned arrays

    def load_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        if arrays:
            raise ValueError(f"GraphBKT has no weights; got {', '.join(arrays)}")

    @classmethod
    def from_graph(cls, graph: Any, **params: float) -> GraphBKT:
        """A model over every standard of a :class:`engine.graph.StandardsGraph`."""
        return cls(bkt_config(list(graph.standards), list(graph.learning.edges), graph.parts, **params))
