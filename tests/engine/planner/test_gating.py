"""The planner gates on the standards the catalog can teach: a standard no item practises is
passed through (what builds on it needs its prerequisites instead), so a catalog with items on
some standards only (a tenant's own framework) still leads learners on. With every standard
practised (the bundled catalog) the links are the learning graph's own."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from configs import PlannerConfig, load_config
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.planner.context import Overrides
from engine.planner.index import PlannerIndex
from engine.planner.planner import recommend
from engine.planner.playlist import plan_playlist
from engine.planner.scoring import rank_candidates
from engine.planner.targets import Readiness, Target, allowed_items, in_place, presumed_prerequisites
from engine.sources import build_default_catalog, graph_from_config, load_catalog_source, load_graph
from tests.engine.planner.conftest import Learner, world


def test_with_every_standard_practised_the_links_are_the_learning_graphs() -> None:
    graph = load_graph()
    index = PlannerIndex.build(graph, build_default_catalog(graph))
    learning = graph.learning
    assert all(index.items_for[u] for u in learning)  # the bundled catalog practises every unit
    for unit in learning:
        assert index.prereqs[unit] == graph.learning_prerequisites(unit)
        assert index.dependents[unit] == tuple(graph.sort(learning.successors(unit)))
        assert index.ancestors[unit] == frozenset(nx.ancestors(learning, unit))


def test_a_standard_no_item_practises_is_passed_through(config) -> None:
    graph, catalog = world()  # A -> B -> C, D apart; items on each
    without_b = Catalog([i for i in catalog if "B" not in i.standards])
    index = PlannerIndex.build(graph, without_b)
    assert index.prereqs["C"] == ("A",) and index.prereqs["B"] == ("A",)
    assert index.dependents["A"] == ("C",) and index.dependents["B"] == ()
    assert index.ancestors["C"] == frozenset({"A"})
    assert index.route(set(), ["C"]) == ["A", "C"]  # nothing to practise B with: not on the route

    learner = Learner(index, config)
    for _ in range(4):
        learner.attempt("A-p1", True)
    learner.attempt("A-check", True)
    assert "A" in learner.progress.mastered
    picked = recommend(learner.ctx(), n=1).recommendations
    assert picked and picked[0].standard == "C"  # not held back by B, which cannot be learned here

    # items for B later (a tenant's own, over this catalog): B gates C again, in the new index only
    extended = index.extended([i for i in catalog if "B" in i.standards], catalog)
    assert extended.prereqs["C"] == ("B",) and extended.ancestors["C"] == frozenset({"A", "B"})
    assert extended.prerequisite_pairs[0].size == 2  # B on A, C on B
    assert index.prereqs["C"] == ("A",) and index.prerequisite_pairs[0].size == 2  # A on nothing: B, C on A


def test_a_standard_with_lessons_only_is_passed_through(config) -> None:
    """A lesson, a reading or a video teaches but sends no answer: a standard with nothing else
    can never be shown mastered here (75 standards of the Coherence Map's own links), so it gates
    as one without items, else everything built on it would wait forever. Its first item that
    answers (a tenant's upsert) makes it gate again."""
    graph, catalog = world()  # A -> B -> C, D apart; items on each
    lessons = Catalog([i for i in catalog if "B" not in i.standards or not i.modality.answers])
    index = PlannerIndex.build(graph, lessons)
    assert index.items_for["B"] and "B" not in index.practised and not index.practised_mask[index.order["B"]]
    assert index.prereqs["C"] == ("A",) and index.ancestors["C"] == frozenset({"A"})
    assert index.route(set(), ["C"]) == ["A", "C"]

    learner = Learner(index, config)
    for item in ("A-p1", "A-p2", "A-p1", "A-check"):
        learner.attempt(item, True)
    assert "A" in learner.progress.mastered
    assert "C-p1" in offered_for(learner, "C") and not offered_for(learner, "B")

    index.with_item(next(i for i in catalog if i.id == "B-p1"))
    assert "B" in index.practised and index.prereqs["C"] == ("B",)
    assert index.ancestors["C"] == frozenset({"A", "B"})


def test_withdrawn_items_are_indexed_for_evidence_but_never_offered(config) -> None:
    """A catalog whose every item of B is withdrawn gates as one without items on B (B passed
    through), while the withdrawn items still name the units an answer on them is evidence of;
    built at once or withdrawn later over an index (a tenant's own change), the same."""
    from dataclasses import replace

    graph, catalog = world()  # A -> B -> C, D apart; items on each
    withdrawn = Catalog([replace(i, withdrawn=True) if "B" in i.standards else i for i in catalog])
    later = PlannerIndex.build(graph, catalog).extended([i for i in withdrawn if i.withdrawn], withdrawn)
    for index in (PlannerIndex.build(graph, withdrawn), later):
        assert index.items_for["B"] == () and "B" not in index.checkable
        assert index.prereqs["C"] == ("A",) and index.ancestors["C"] == frozenset({"A"})
        assert all(index.item_units[i.id] == i.standards for i in withdrawn if i.withdrawn)
        learner = Learner(index, config)
        learner.attempt(next(i.id for i in withdrawn if i.withdrawn), True)
        assert learner.progress.get("B").attempts == 1  # an answer on it counts
        assert all("B" not in r.item.standards for r in recommend(learner.ctx(), n=5).recommendations)


def test_a_standard_no_item_practises_is_not_presumed_missing() -> None:
    """Stuck on solid prerequisites, the learner is sent to the previous standard of the cluster
    (see test_routing); one no item practises is passed over for the one before it."""
    std = [Standard(c, grade="4", grade_num=4, domain_code="X", cluster_code="4.X") for c in ("G1", "G2", "G3")]
    graph = StandardsGraph(std, [])
    items = [
        Item(f"{c}-p{k}", f"{c} practice {k}", (c,), Modality.ONLINE_PRACTICE, 10) for c in ("G1", "G3") for k in (1, 2)
    ]
    learner = Learner(PlannerIndex.build(graph, Catalog(items)), PlannerConfig(exploration=0.0))
    learner.state = learner.model.state_with_priors({"G1": 0.1, "G2": 0.1})
    for item in ("G3-p1", "G3-p2", "G3-p1"):
        learner.attempt(item, False)
    ctx = learner.ctx()
    assert presumed_prerequisites(ctx, in_place(ctx, learner.progress.mastered)) == {"G3": "G1"}  # not G2


def test_an_empty_plan_says_why(config) -> None:
    graph, catalog = world()
    bare = Learner(PlannerIndex.build(graph, Catalog([])), config)
    assert recommend(bare.ctx()).why_empty[0] == "no_items"
    learner = Learner(PlannerIndex.build(graph, catalog), config)
    excluded = Overrides(excluded_items=frozenset(i.id for i in catalog))
    assert recommend(learner.ctx(overrides=excluded)).why_empty[0] == "none_allowed"
    offered = recommend(learner.ctx())
    assert offered.recommendations and offered.why_empty is None


def test_an_empty_playlist_says_why(config) -> None:
    graph, catalog = world()
    bare = Learner(PlannerIndex.build(graph, Catalog([])), config)
    assert plan_playlist(bare.ctx(), 30).empty[0] == "no_items"
    learner = Learner(PlannerIndex.build(graph, catalog), config)
    short = plan_playlist(learner.ctx(), 2)  # every item takes 5 minutes or more
    assert not short.activities and short.empty[0] == "none_fits" and "2 minutes" in short.empty[1]
    assert plan_playlist(learner.ctx(), 30).empty is None


def test_a_standard_practised_only_with_what_builds_on_it_is_practised_so(config) -> None:
    """A catalog aligned by lesson or by parent standard ("3.NF.A.1, 3.NF.A.2"; 4.NF.B.4 for its
    parts a, b and c) may have no item that practises a standard alone: its only practice also
    practises what needs it first. Such an item is given for the standard when nothing that
    answers practises it alone, one whose gap lies inside it first; before, the standard could
    never be practised and nothing built on it ever learned. Where the standard has practice of
    its own, the item waits until all it practises is ready, as before."""
    graph, catalog = world()  # A -> B -> C, D apart
    lessons_only = {"A-p1", "A-p2", "A-check", "D-p1", "D-p2", "D-check"}
    items = [i for i in catalog if i.id not in lessons_only]
    items.append(Item("AC-mixed", "A and C together", ("A", "C"), Modality.ONLINE_PRACTICE, 10))
    index = PlannerIndex.build(graph, Catalog(items))
    learner = Learner(index, config)

    offered = offered_for(learner, "A")
    assert "AB-mixed" in offered  # A's only practice, with B, which needs only A
    assert "AC-mixed" not in offered  # C also needs B, which the item does not practise
    # without AB-mixed, AC-mixed is A's only practice: given, its gap (B) notwithstanding
    far = Learner(PlannerIndex.build(graph, Catalog([i for i in items if i.id != "AB-mixed"])), config)
    assert "AC-mixed" in offered_for(far, "A")

    for _ in range(30):
        if "A" in learner.progress.mastered:
            break
        picked = recommend(learner.ctx(), n=1).recommendations[0]
        assert picked.standard in ("A", "D")
        learner.attempt(picked.item.id, True)
    assert "A" in learner.progress.mastered
    assert "B-p1" in offered_for(learner, "B")

    with_own = Learner(PlannerIndex.build(graph, catalog), config)
    offered = offered_for(with_own, "A")
    assert "A-p1" in offered and "AB-mixed" not in offered


def offered_for(learner: Learner, unit: str) -> set[str]:
    """The items every candidate of the learner's plan offers for ``unit``."""
    ranked = rank_candidates(learner.ctx())[0]
    return {item for standard, item, _ in map(ranked.label, range(len(ranked))) if standard == unit}


def test_every_standard_of_the_coherence_maps_own_links_can_be_practised_once_ready(config) -> None:
    """The bundled graph with the Coherence Map's own links alone (``generate_missing = false``,
    as ``configs/coherence_links_only.toml`` serves it):
    every standard something that answers practises gets something that answers once all it
    needs is in place. Before, 26 could not (their only practice a parent's or a cluster's task
    over standards that need them) and 75 with only lessons or readings held back all that
    builds on them."""
    served = load_config(Path(__file__).parents[3] / "configs" / "coherence_links_only.toml")
    graph = graph_from_config(served.graph)
    catalog = load_catalog_source(served.catalog.source, graph, served.catalog.generate_missing)
    assert all(item.source == "coherence_map" for item in catalog)
    index = PlannerIndex.build(graph, catalog)
    learner = Learner(index, config)
    ctx = learner.ctx()
    without = []
    for unit in index.practised:
        placed = frozenset(index.ancestors[unit])
        allowed = allowed_items(ctx, Target(unit, "learn", []), placed, Readiness(ctx, placed, {}))
        if not any(item.modality.answers for item in allowed):
            without.append(unit)
    assert len(index.practised) > 300 and without == []
    assert not any(index.items_for[u] and u not in index.practised for u in index.ancestors["4.NF.B.3.a"])


def test_a_learner_answering_right_reaches_a_goal_on_the_coherence_maps_own_links(config) -> None:
    """On the Coherence Map's own links alone, a grade 4 learner who answers right whatever the
    plan gives (and reads or attends what sends no answer) reaches 4.NF.B.3 and 4.NF.B.4, whose
    parts are practised there only by their parents' and their cluster's tasks. Before, the plan
    never gave those tasks, and the learner was held on other work for good."""
    from engine.learner import Observation
    from engine.planner.context import Goal

    served = load_config(Path(__file__).parents[3] / "configs" / "coherence_links_only.toml")
    graph = graph_from_config(served.graph)
    index = PlannerIndex.build(graph, load_catalog_source("bundled", graph, served.catalog.generate_missing))
    goal = Goal(("4.NF.B.3", "4.NF.B.4"))
    learner = Learner(index, config)
    earlier = {u: 0.97 for u in index.order if (graph.standards[u].grade_num or 0) <= 3}
    learner.state = learner.model.state_with_priors(earlier)
    units = index.units(goal.standards)
    t = 0.0
    for step in range(100):
        if all(u in learner.progress.mastered for u in units):
            break
        picked = recommend(learner.ctx(now=t, goal=goal), n=1).recommendations
        assert picked, step
        item = picked[0].item
        answer = 1.0 if item.modality.answers else None
        learner.core.observe(learner.learner, Observation(item.id, item.standards, answer, t))
        t += 600.0
    assert all(u in learner.progress.mastered for u in units), step
