"""The promotion gate: a model over a data set's own skill ids, a model that predicts one number,
and a challenger worse than the champion on held-out events are refused, each check named."""

from __future__ import annotations

import numpy as np

from models.base import Event, ItemSpec
from models.bkt import GraphBKT, bkt_config
from models.gate import check_model, compare
from models.hybrid import HybridModel
from models.logistic import LogisticModel
from models.neural import neural_config

STANDARDS = ["A", "B", "C", "D"]
ITEMS = [ItemSpec(f"i-{s}-{k}", (s,), float(k) - 1.0) for s in STANDARDS for k in range(3)]


def trained_on(standards: list[str], seed: int = 0) -> LogisticModel:
    model = LogisticModel(neural_config(standards, [i.item_id for i in ITEMS], {}, seed))
    model.set_item_difficulty(np.linspace(-1.5, 1.5, len(ITEMS)))
    return model


def test_a_model_over_skill_ids_is_refused_naming_its_coverage() -> None:
    report = check_model(trained_on(["1", "2", "3"]), ITEMS, STANDARDS)
    assert not report.passed
    failed = {c.name: c for c in report.failures()}
    assert set(failed) == {"standard coverage", "item coverage"}
    assert failed["standard coverage"].value == 0.0 and "ids such as 1, 2, 3" in failed["standard coverage"].detail
    assert "alignment" in report.summary()


def test_an_aligned_hybrid_and_graph_bkt_pass() -> None:
    graph_bkt = GraphBKT(bkt_config(STANDARDS, [("A", "B"), ("B", "C")]))
    assert check_model(graph_bkt, ITEMS, STANDARDS).passed
    hybrid = HybridModel.combine(trained_on(["A", "B"]), graph_bkt)
    report = check_model(hybrid, ITEMS, STANDARDS)
    assert report.passed, report.summary()
    assert {c.name for c in report.checks} == {"probabilities", "standard coverage", "item coverage", "spread"}


def test_one_number_for_every_item_is_refused() -> None:
    flat = trained_on(["A", "B", "C", "D"])
    flat.set_item_difficulty(np.zeros(len(ITEMS)))
    with_weights = flat.weights()
    flat.load_weights({k: np.zeros_like(v) for k, v in with_weights.items()})
    report = check_model(flat, ITEMS, STANDARDS)
    assert [c.name for c in report.failures()] == ["spread"]


def test_a_challenger_worse_on_held_out_events_is_refused() -> None:
    graph_bkt = GraphBKT(bkt_config(STANDARDS, []))
    rng = np.random.default_rng(0)
    learners = []
    for _ in range(30):  # learners who know A and B and not C and D
        events = []
        for t in range(12):
            s = STANDARDS[int(rng.integers(4))]
            events.append(Event(f"i-{s}-1", (s,), float(s in ("A", "B")), float(t)))
        learners.append(events)
    champion = graph_bkt
    challenger = trained_on(["A", "B", "C", "D"], seed=3)
    challenger.load_weights({k: np.zeros_like(v) for k, v in challenger.weights().items()})  # learned nothing
    verdict = compare(challenger, champion, learners)
    assert not verdict.passed and "held-out answers" in verdict.detail
    assert compare(champion, champion, learners).passed


def test_only_the_answers_marked_scored_count_and_the_others_are_read_first() -> None:
    """A model trained on a server's answers is compared on those that arrived after: the earlier
    ones are read (a prediction sees them), not scored."""
    graph_bkt = GraphBKT(bkt_config(STANDARDS, []))
    events = [Event(f"i-{s}-1", (s,), float(s in ("A", "B")), float(t)) for t, s in enumerate("ABCDABCDAB")]
    scored = [[t >= 6 for t in range(len(events))]]
    verdict = compare(graph_bkt, graph_bkt, [events], scored=scored)
    assert verdict.detail.startswith("on 4 held-out answers")
    assert compare(graph_bkt, graph_bkt, [events], scored=[[False] * len(events)]).detail == (
        "no held-out answers to compare on"
    )
    # what is scored is predicted after every answer before it, as without a mask
    p = np.clip(np.asarray(graph_bkt.predict_sequence(events))[6:], 1e-6, 1 - 1e-6)
    y = np.array([e.correct for e in events[6:]])
    log_loss = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    assert f"log-loss {log_loss:.4f} vs {log_loss:.4f}" in verdict.detail
    alone = compare(graph_bkt, graph_bkt, [events[6:]])  # the same answers without what came before
    assert alone.detail.split("log-loss ")[1][:6] != f"{log_loss:.4f}"
