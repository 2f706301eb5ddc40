"""Graph BKT: the evidence rules that make it useful with no training data."""

from __future__ import annotations

import numpy as np
import pytest

from models.base import Event, ItemSpec
from models.bkt import DEFAULTS, GraphBKT, bkt_config


def chain() -> GraphBKT:
    # A -> B -> C
    return GraphBKT(bkt_config(["A", "B", "C"], [("A", "B"), ("B", "C")]))


def test_success_raises_prerequisites_and_unobserved_dependents() -> None:
    model = chain()
    m = model.mastery(model.update(model.init_state(), Event("i", ("B",), 1.0)))
    assert m["B"] > m["A"] > DEFAULTS["p_init"] and m["C"] > DEFAULTS["p_init"]


def test_failure_raises_doubt_on_prerequisites_and_dependents() -> None:
    model = chain()
    state = model.state_with_priors({"A": 0.9, "B": 0.5, "C": 0.5})
    m = model.mastery(model.update(state, Event("i", ("B",), 0.0)))
    assert m["B"] < 0.5 and m["A"] < 0.9 and m["C"] < 0.5


def test_observed_dependents_keep_their_own_evidence() -> None:
    model = chain()
    state = model.update(model.init_state(), Event("i", ("C",), 0.0))
    c_before = model.mastery(state)["C"]
    state = model.update(state, Event("i", ("B",), 1.0))
    assert model.mastery(state)["C"] == pytest.approx(c_before)


def test_parent_evidence_is_shared_by_parts_and_mastery_rolls_up() -> None:
    model = GraphBKT(bkt_config(["P", "P.a", "P.b"], [], {"P": ["P.a", "P.b"]}))
    state = model.update(model.init_state(), Event("i", ("P",), 1.0))
    m = model.mastery(state)
    assert m["P.a"] == m["P.b"] > DEFAULTS["p_init"]
    state = model.update(state, Event("i", ("P.a",), 1.0))
    m = model.mastery(state)
    assert m["P"] == min(m["P.a"], m["P.b"]) == m["P.b"]


def test_prediction_follows_knowledge_and_difficulty() -> None:
    model = chain()
    state = model.state_with_priors({"A": 0.95, "B": 0.2})
    easy_a, hard_a, b = model.predict_items(
        state, [ItemSpec("1", ("A",), 0.1), ItemSpec("2", ("A",), 0.9), ItemSpec("3", ("B",))]
    )
    assert easy_a > hard_a and hard_a > b
    both = model.predict_items(state, [ItemSpec("4", ("A", "B"))])[0]
    assert both < model.predict_items(state, [ItemSpec("5", ("A",))])[0]


def test_unknown_standards_get_the_prior_prediction() -> None:
    model = chain()
    p = model.predict_items(model.init_state(), [ItemSpec("x", ("Z.9",))])[0]
    expected = DEFAULTS["p_init"] * (1 - DEFAULTS["p_slip"]) + (1 - DEFAULTS["p_init"]) * DEFAULTS["p_guess"]
    assert p == pytest.approx(expected)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="p_slip \\+ p_guess must be < 1"):
        GraphBKT(bkt_config(["A"], p_slip=0.5, p_guess=0.6))
    with pytest.raises(ValueError, match="unknown BKT parameter"):
        bkt_config(["A"], p_slep=0.1)


def test_bundled_graph_model(bundled_graph) -> None:
    model = GraphBKT.from_graph(bundled_graph)
    state = model.update(model.init_state(), Event("i", ("3.NF.A.1",), 1.0))
    m = model.mastery(state)
    assert m["2.G.A.3"] > DEFAULTS["p_init"] and m["4.NF.B.3"] > DEFAULTS["p_init"] - 1e-12
    assert np.isfinite(list(m.values())).all()
