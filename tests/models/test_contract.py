"""The contract every learner-state model passes (a new model joins by adding a factory)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from models.akt import AKTModel
from models.base import Event, ItemSpec, LearnerModel, ModelFormatError, state_from_bytes, state_to_bytes
from models.bkt import GraphBKT, bkt_config
from models.dkt import DKTModel
from models.hybrid import HybridModel
from models.logistic import LogisticModel
from models.neural import NeuralModel, neural_config
from models.registry import load_model
from models.zpd import ZPDModel

STANDARDS = ["A", "B", "C", "P", "P.a", "P.b"]
EDGES = [("A", "B"), ("B", "C"), ("A", "P.a"), ("P.a", "P.b")]
PARTS = {"P": ["P.a", "P.b"]}


def make_bkt(seed: int = 0) -> LearnerModel:
    return GraphBKT(bkt_config(STANDARDS, EDGES, PARTS))


#: items item-0..item-5 are "seen in training"; item-6, item-7 and item-x are not
TRAINED_ITEMS = [f"item-{i}" for i in range(6)]


def make_neural(cls: type[NeuralModel], **hyper) -> Callable[[int], LearnerModel]:
    """Untrained weights from the seed, jittered so that no parameter sits at a special value
    (zero residuals, unit scales), plus seeded item difficulties: every path is exercised."""

    def factory(seed: int = 0) -> LearnerModel:
        model = cls(neural_config(STANDARDS, TRAINED_ITEMS, hyper, seed))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in model.net.modules():
                for param in module.parameters(recurse=False):
                    param.add_(0.3 * torch.randn(param.shape, generator=gen))
                if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
        model.set_item_difficulty(np.random.default_rng(seed).normal(0, 1, len(TRAINED_ITEMS)))
        return model

    return factory


FACTORIES: dict[str, Callable[[int], LearnerModel]] = {
    "bkt": make_bkt,
    "logistic": make_neural(LogisticModel),
    "dkt": make_neural(DKTModel, dim=8, hidden=12, out_hidden=6, item_residual=True),
    "dkt-gru": make_neural(DKTModel, dim=8, hidden=12, out_hidden=6, cell="gru"),
    # a window shorter than the history, so the sliding window is part of the contract
    "akt": make_neural(AKTModel, dim=8, heads=2, window=7, out_hidden=6, item_residual=True),
    "zpd": make_neural(ZPDModel, dim=8, hidden=12, out_hidden=6, item_residual=True),
}


def make_hybrid(seed: int = 0) -> LearnerModel:
    """A trained model that knows only A and B (as a real data set covers part of a framework),
    graph BKT for the rest."""
    trained = LogisticModel(neural_config(["A", "B"], TRAINED_ITEMS, {}, seed))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # not at the zero initialization: evidence moves its estimates
        for param in trained.net.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen))
    return HybridModel.combine(trained, make_bkt(seed))


FACTORIES["hybrid"] = make_hybrid


def history(seed: int, length: int = 30) -> list[Event]:
    rng = np.random.default_rng(seed)
    codes = ["A", "B", "C", "P", "P.a", "P.b"]
    events = []
    for t in range(length):
        k = rng.integers(1, 3)
        stds = tuple(rng.choice(codes, size=k, replace=False))
        events.append(Event(f"item-{rng.integers(0, 8)}", stds, float(rng.integers(0, 2)), 1000.0 + 60 * t))
    return events


CANDIDATES = [
    ItemSpec(f"item-{i}", (c,), d)
    for i, (c, d) in enumerate(
        [("A", None), ("B", 0.2), ("C", 0.8), ("P", None), ("P.b", 0.5), ("unknown-standard", None)]
    )
]


@pytest.fixture(params=sorted(FACTORIES))
def factory(request) -> Callable[[int], LearnerModel]:
    return FACTORIES[request.param]


def test_shapes_and_ranges(factory) -> None:
    model = factory(0)
    state = model.replay(history(1))
    probs = model.predict_items(state, CANDIDATES)
    assert probs.shape == (len(CANDIDATES),)
    assert np.all((probs > 0) & (probs < 1))
    mastery = model.mastery(state)
    assert set(mastery) == set(STANDARDS)
    assert all(0.0 <= v <= 1.0 for v in mastery.values())


def test_predicting_some_items_equals_picking_them_from_all(factory) -> None:
    """A request predicts its candidates only (``take``): the same numbers as predicting the
    whole batch and picking, for any positions, repeats and multi-standard items included."""
    model = factory(0)
    specs = [*CANDIDATES, ItemSpec("item-6", ("A", "P.a", "C"), 0.3), ItemSpec("item-7", ("B", "P"), None)]
    batch = model.encode_items(specs)
    for state in (model.init_state(), model.replay(history(2)), model.state_with_priors({"A": 0.9, "C": 0.2})):
        full = model.predict(state, batch)
        for positions in ([7, 0, 6, 6, 2], [3], list(range(len(specs)))[::-1], []):
            at = np.asarray(positions, dtype=np.int64)
            assert np.allclose(model.predict_at(state, batch, at), full[at], rtol=1e-6, atol=1e-9)


def test_deterministic_under_a_seed(factory) -> None:
    a, b = factory(7), factory(7)
    events = history(2)
    np.testing.assert_array_equal(a.predict_sequence(events), b.predict_sequence(events))


def test_update_does_not_modify_the_given_state(factory) -> None:
    model = factory(0)
    state = model.init_state()
    frozen = {k: v.copy() for k, v in state.items()}
    model.update(state, Event("item-1", ("A",), 1.0))
    for key in frozen:
        np.testing.assert_array_equal(state[key], frozen[key])


def test_incremental_update_equals_full_recompute(factory) -> None:
    model = factory(0)
    events = history(3)
    batched = model.predict_sequence(events)
    state = model.init_state()
    stepwise = []
    for event in events:
        stepwise.append(model.predict_items(state, [ItemSpec(event.item_id, event.standards)])[0])
        state = model.update(state, event)
    np.testing.assert_allclose(batched, stepwise, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(factory, tmp_path: Path) -> None:
    model = factory(0)
    state = model.replay(history(4))
    folder = model.save(tmp_path / "model")
    again = load_model(folder)
    assert type(again) is type(model)
    np.testing.assert_allclose(again.predict_items(state, CANDIDATES), model.predict_items(state, CANDIDATES))
    assert again.mastery(state) == pytest.approx(model.mastery(state))


def test_state_serializes_without_pickle(factory) -> None:
    model = factory(0)
    state = model.replay(history(5))
    again = state_from_bytes(state_to_bytes(state))
    np.testing.assert_allclose(model.predict_items(again, CANDIDATES), model.predict_items(state, CANDIDATES))


def test_mastery_never_drops_after_a_correct_answer(factory) -> None:
    model = factory(0)
    if not model.monotonic:
        pytest.skip(f"{model.name} does not claim monotonic mastery")
    for seed in range(5):
        state = model.replay(history(seed, 15))
        for code in STANDARDS:
            before = model.mastery(state)
            after = model.mastery(model.update(state, Event("item-x", (code,), 1.0)))
            assert all(after[c] >= before[c] - 1e-12 for c in STANDARDS), (seed, code)


def test_loading_refuses_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="config.json: not found"):
        load_model(tmp_path)
    folder = make_bkt().save(tmp_path / "m")
    text = (folder / "config.json").read_text().replace('"format_version": 1', '"format_version": 99')
    (folder / "config.json").write_text(text)
    with pytest.raises(ModelFormatError, match="format_version 99 is not supported"):
        load_model(folder)


def test_hybrid_gates_on_graph_bkt_and_predicts_with_the_trained_part() -> None:
    """Mastery (what the planner gates on) is graph BKT's P(known); predictions on items the
    trained part covers are the trained part's."""
    model = make_hybrid()
    state = model.replay(history(3, 25))
    t = {k[2:]: v for k, v in state.items() if k.startswith("t.")}
    f = {k[2:]: v for k, v in state.items() if k.startswith("f.")}
    assert model.mastery(state) == model.fallback.mastery(f)
    covered = [ItemSpec("item-1", ("A",)), ItemSpec("item-2", ("A", "B"))]
    np.testing.assert_allclose(model.predict_items(state, covered), model.trained.predict_items(t, covered))
    other = [ItemSpec("item-3", ("C",)), ItemSpec("item-4", ("A", "C"))]
    np.testing.assert_allclose(model.predict_items(state, other), model.fallback.predict_items(f, other))


def test_priors_set_the_starting_belief_and_evidence_moves_it(factory) -> None:
    """``state_with_priors``: mastery of a standard without evidence is its prior; items on a
    standard believed known are predicted above those on a standard believed unknown; answers
    still move the estimate, and the priors survive updates and serialization."""
    model = factory(0)
    state = model.state_with_priors({"A": 0.9, "C": 0.1, "not-a-standard": 0.5})
    mastery = model.mastery(state)
    assert mastery["A"] == pytest.approx(0.9, abs=0.02) and mastery["C"] == pytest.approx(0.1, abs=0.02)
    plain = model.mastery(model.init_state())
    assert mastery["B"] == pytest.approx(plain["B"], abs=0.05)  # others keep the model's own start
    on = [ItemSpec("item-x", ("A",)), ItemSpec("item-x", ("C",))]
    p_a, p_c = model.predict_items(state, on)
    assert p_a > p_c
    failed = model.update(state, Event("item-x", ("A",), 0.0))
    # evidence moves the estimate (which way depends on the weights: these are untrained)
    assert model.mastery(failed)["A"] != pytest.approx(mastery["A"], abs=1e-4)
    if model.monotonic:
        assert model.mastery(model.update(state, Event("item-x", ("A",), 1.0)))["A"] >= mastery["A"]
    again = state_from_bytes(state_to_bytes(failed))
    assert model.mastery(again) == pytest.approx(model.mastery(failed))
    frozen = {k: v.copy() for k, v in state.items()}
    model.state_with_priors({"A": 0.2}, state)
    for key in frozen:  # the given state is not modified
        np.testing.assert_array_equal(state[key], frozen[key])


def test_prior_values_skip_nan_and_take_a_repeated_code_last(factory) -> None:
    """``state_with_prior_values``: a NaN value is no prior (as if the code were not listed), a
    code given twice takes its last value, and the same list gives the same state again (the
    models remember where its codes sit)."""
    model = factory(0)

    def same(a, b) -> None:
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    codes = ["C", "A", "not-a-standard", "B"]
    for state in (None, model.replay(history(3))):
        plain = model.state_with_prior_values(["C", "A", "not-a-standard"], np.array([0.2, 0.9, 0.5]), state)
        for _ in range(2):
            same(model.state_with_prior_values(codes, np.array([0.2, 0.9, 0.5, np.nan]), state), plain)
        same(model.state_with_prior_values(["A", "C", "A"], np.array([0.1, 0.2, 0.9]), state), plain)
        same(model.state_with_priors({"C": 0.2, "A": 0.9, "not-a-standard": 0.5}, state), plain)
    untouched = model.state_with_prior_values(codes, np.full(4, np.nan), model.init_state())
    same(untouched, model.state_with_priors({}, model.init_state()))


def test_items_the_model_cannot_tell_apart_are_predicted_exactly_alike(factory) -> None:
    """``item_key`` names what a model's prediction reads of an item. Items with one key get the
    same P(correct) up to float rounding, and the catalog's predictions make them exactly equal,
    in any batch: otherwise a float32 product, which rounds a row by where it sits in the batch,
    would decide a tie between two such items (and the API and the simulator could disagree)."""
    from engine.catalog import Item, Modality
    from engine.learner import CatalogPredictions

    model = factory(0)
    specs = [
        ("x-1", ("C",), 0.8),
        ("x-2", ("C",), 0.8),  # twin of x-1 (neither is an item of its own to the model)
        ("x-3", ("P.b",), None),
        ("x-4", ("P.b",), None),  # twin of x-3
        ("item-2", ("C",), 0.8),  # a trained item has parameters of its own (in a trained model)
        ("item-3", ("C",), 0.8),
        *((f"y-{k}", (STANDARDS[k % 6],), k / 40) for k in range(40)),  # many rows: rounding by position
    ]
    keys = [model.item_key(ItemSpec(i, s, d)) for i, s, d in specs]
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    if isinstance(model, NeuralModel):
        assert len({keys[0], keys[4], keys[5]}) == 3
    items = [Item(i, i, s, Modality.ONLINE_PRACTICE, 10.0, d) for i, s, d in specs]
    predictions = CatalogPredictions.encode(model, items)
    state = model.replay(history(3))
    full = predictions.all(state)
    assert np.allclose(full, model.predict(state, model.encode_items([ItemSpec(i, s, d) for i, s, d in specs])))
    assert full[0] == full[1] and full[2] == full[3]
    rng = np.random.default_rng(0)
    for _ in range(5):
        positions = rng.permutation(len(specs))[: rng.integers(2, len(specs))]
        positions = np.concatenate([positions, [0, 1, 2, 3]])
        got = predictions.at(state, positions)
        assert got[-4] == got[-3] and got[-2] == got[-1]  # twins exactly alike, whatever the batch
        assert np.allclose(got, full[positions], rtol=1e-6, atol=1e-9)


def test_the_distinct_positions_of_a_request_are_numpys_unique() -> None:
    """``CatalogPredictions.at`` finds the distinct rows of a request with its own sort (fewer
    NumPy calls than ``np.unique``); the rows and the way back must be ``np.unique``'s, repeats
    and an empty request included."""
    from engine.learner import _distinct

    rng = np.random.default_rng(3)
    for size in (0, 1, 2, 7, 72, 400):
        for _ in range(50):
            values = rng.integers(0, size // 2 + 1, size)
            rows, back = _distinct(values)
            want_rows, want_back = np.unique(values, return_inverse=True)
            assert rows.tolist() == want_rows.tolist() and back.tolist() == want_back.tolist()
