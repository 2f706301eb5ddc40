"""The zpd model's count features: by hand, leakage-free, and equal in the batched and serving paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.base import Event, ItemSpec, ModelFormatError
from models.neural import encode_attempts, neural_config, recency_features
from models.registry import load_model
from models.zpd import FEATURES, N_FEATURES, ZPDModel, _features, _state_features
from tests.models.test_neural import perturbed

STANDARDS = ["A", "B", "C"]
ITEMS = ["q1", "q2", "q3"]


def small(seed: int = 0) -> ZPDModel:
    return perturbed(ZPDModel(neural_config(STANDARDS, ITEMS, {"dim": 8, "hidden": 12, "out_hidden": 6}, seed)), seed)


def mixed_history(seed: int, length: int = 40) -> list[Event]:
    """Repeated standards, runs, partial scores (0.5 counts as a success for streaks) and attempts
    without any known standard."""
    rng = np.random.default_rng(seed)
    choices = [("A",), ("B",), ("A", "C"), ("C",), ("not-a-standard",), ("B", "C")]
    scores = [0.0, 1.0, 1.0, 0.5, 0.25]
    return [
        Event(
            ITEMS[int(rng.integers(3))],
            choices[int(rng.integers(len(choices)))],
            scores[int(rng.integers(len(scores)))],
        )
        for _ in range(length)
    ]


def one_learner(stds: list[list[int]], correct: list[float], n_standards: int = 2):
    offsets = np.concatenate(([0], np.cumsum([len(s) for s in stds])))
    flat = np.array([s for ss in stds for s in ss], dtype=np.int64)
    n = len(correct)
    return encode_attempts(
        np.array([0, n]),
        np.zeros(n, dtype=np.int64),
        offsets,
        flat,
        np.array(correct),
        np.zeros(n),
        n_items=1,
        n_standards=n_standards,
    )


def test_recency_features_by_hand() -> None:
    # standard 0 on attempts 0, 1, 3, 4; standard 1 on attempts 2, 4
    enc = one_learner([[0], [0], [1], [0], [0, 1], [1]], [1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    assert enc.standards.tolist() == [[0, 2], [0, 2], [1, 2], [0, 2], [0, 1], [1, 2]]
    assert enc.std_streak[:, 0].tolist() == [0, 1, 0, 2, -1, 1]  # attempt 4: its second slot is B, -1
    assert enc.std_streak[4, 1] == -1
    assert enc.std_gap[:, 0].tolist() == [0, 1, 0, 2, 1, 1]  # attempts since the standard was last seen
    assert enc.std_gap[4, 1] == 2
    assert enc.std_run[:, 0].tolist() == [0, 1, 0, 0, 1, 1]  # A at 3 follows B at 2: no run; B at 5 follows B at 4
    assert enc.total_streak.tolist() == [0, 1, 2, -1, -2, 1]


def test_recency_features_restart_for_each_learner() -> None:
    streak, gap, run = recency_features(np.array([0, 0, 1]), np.array([0, 0, 0]), np.arange(3), np.ones(3))
    assert streak.tolist() == [0, 1, 0] and gap.tolist() == [0, 1, 0] and run.tolist() == [0, 1, 0]


@pytest.mark.parametrize("t", [0, 3, 7, 12])
def test_features_of_an_attempt_depend_only_on_earlier_attempts(t: int) -> None:
    model = small()
    events = mixed_history(1, 16)
    base = _features(model._encode_events(events).batch([0]), model.n_standards)[0]
    changed = list(events)
    changed[t] = Event("q2", ("B", "C") if events[t].standards != ("B", "C") else ("A",), 1.0 - events[t].correct)
    later = list(events[: t + 1]) + [Event("q1", ("A",), 1.0)] * 5
    moved = _features(model._encode_events(changed).batch([0]), model.n_standards)[0]
    truncated = _features(model._encode_events(later).batch([0]), model.n_standards)[0]
    # attempt t's own label and standards and anything after it never reach features up to t
    torch.testing.assert_close(moved[:t], base[:t])
    torch.testing.assert_close(truncated[: t + 1], base[: t + 1])
    assert not torch.allclose(moved[t + 1 :], base[t + 1 :])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_serving_features_equal_the_batched_features(seed: int) -> None:
    model = small(seed)
    events = mixed_history(seed)
    batched = _features(model._encode_events(events).batch([0]), model.n_standards)[0].numpy()
    assert batched.shape == (len(events), N_FEATURES) == (len(events), len(FEATURES))
    state = model.init_state()
    for t, event in enumerate(events):
        cand = model.encode_items([ItemSpec(event.item_id, event.standards)]).arrays
        served = _state_features(state, cand["standards"], cand["real"], cand["count"])[0]
        np.testing.assert_allclose(served, batched[t], rtol=1e-6, atol=1e-6, err_msg=f"attempt {t}")
        state = model.update(state, event)
    assert state["total"].tolist() == [
        sum(e.correct for e in events),
        sum(1 - e.correct for e in events),
        state["total"][2],
        len(events),
    ]


def test_partial_scores_predict_the_same_batched_and_step_by_step() -> None:
    model = small(3)
    events = mixed_history(3)
    state, stepwise = model.init_state(), []
    for event in events:
        stepwise.append(model.predict_items(state, [ItemSpec(event.item_id, event.standards)])[0])
        state = model.update(state, event)
    np.testing.assert_allclose(model.predict_sequence(events), stepwise, rtol=1e-5, atol=1e-6)


def test_state_size_does_not_grow_with_history() -> None:
    model = small()
    short, long = model.replay(mixed_history(0, 5)), model.replay(mixed_history(0, 200))
    assert {k: v.shape for k, v in short.items()} == {k: v.shape for k, v in long.items()}


def test_an_older_zpd_state_or_model_is_refused_with_a_clear_error(tmp_path) -> None:
    model = small()
    old_state = {
        "h": np.zeros(12, np.float32),
        "success": np.zeros(4, np.float32),
        "failure": np.zeros(4, np.float32),
        "total": np.zeros(2, np.float32),
    }
    with pytest.raises(ModelFormatError, match="older zpd model; rebuild it from the learner's event log"):
        model.update(old_state, Event("q1", ("A",), 1.0))
    with pytest.raises(ModelFormatError, match="older zpd model"):
        model.predict_items(old_state, [ItemSpec("q1", ("A",))])
    folder = model.save(tmp_path / "zpd")
    with np.load(folder / "weights.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["net.out_f.weight"] = arrays["net.out_f.weight"][:, :4]  # the 4 count features of an older zpd
    np.savez(folder / "weights.npz", **arrays)
    with pytest.raises(ModelFormatError, match="4 count features per attempt.*retrain the model"):
        load_model(folder)
