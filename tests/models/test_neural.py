"""The torch base (models.neural) and the three trainable models beyond the shared contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.akt import AKTModel, band_attention
from models.base import Event, ItemSpec
from models.dkt import DKTModel
from models.logistic import LogisticModel
from models.neural import NeuralModel, difficulty_features, encode_attempts, neural_config

STANDARDS = ["A", "B", "C"]
ITEMS = ["q1", "q2", "q3"]
SMALL = {
    "logistic": (LogisticModel, {}),
    "dkt": (DKTModel, {"dim": 8, "hidden": 12, "out_hidden": 6}),
    "akt": (AKTModel, {"dim": 8, "heads": 2, "window": 4, "out_hidden": 6}),
}


def perturbed(model: NeuralModel, seed: int = 0) -> NeuralModel:
    """Move the weights off their special initial values (zeros, ones), keeping padding rows zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.net.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen))
        for module in model.net.modules():
            if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
    return model


def small(name: str, seed: int = 0) -> NeuralModel:
    cls, hyper = SMALL[name]
    return perturbed(cls(neural_config(STANDARDS, ITEMS, hyper, seed)), seed)


def events(labels: list[float]) -> list[Event]:
    stds = [("A",), ("B",), ("A", "C"), ("C",), ("B",), ("A",), ("C",), ("A", "B")]
    return [Event(ITEMS[t % 3], stds[t % len(stds)], c) for t, c in enumerate(labels)]


# ------------------------------------------------------------------------------------------ data
def test_prior_counts_per_standard_and_in_total() -> None:
    # one learner: A right, (A, B) wrong, B right; standards as model indices
    enc = encode_attempts(
        np.array([0, 3]),
        np.array([0, 1, 2]),
        np.array([0, 1, 3, 4]),
        np.array([0, 0, 1, 1]),
        np.array([1.0, 0.0, 1.0]),
        np.zeros(3),
        n_items=3,
        n_standards=2,
    )
    assert enc.standards.tolist() == [[0, 2], [0, 1], [1, 2]]  # padded with n_standards = 2
    assert enc.std_success.tolist() == [[0, 0], [1, 0], [0, 0]]  # before attempt 2: one success on A
    assert enc.std_failure.tolist() == [[0, 0], [0, 0], [1, 0]]  # before attempt 3: one failure on B
    assert enc.total_success.tolist() == [0, 1, 1] and enc.total_failure.tolist() == [0, 0, 1]


def test_prior_counts_restart_for_each_learner() -> None:
    enc = encode_attempts(
        np.array([0, 1, 2]),
        np.array([0, 0]),
        np.array([0, 1, 2]),
        np.array([0, 0]),
        np.array([1.0, 1.0]),
        np.zeros(2),
        n_items=1,
        n_standards=1,
    )
    assert enc.std_success[:, 0].tolist() == [0, 0] and enc.total_success.tolist() == [0, 0]


def test_difficulty_is_relative_to_the_items_standards() -> None:
    # standard 0: item 0 always failed, item 1 always passed; standard 1: item 2 always passed
    item = np.array([0, 0, 1, 1, 2, 2])
    stds = np.array([[0], [0], [0], [0], [1], [1]])
    correct = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    feats = difficulty_features(item, stds, correct, n_items=4, n_standards=2, prior=0.0)
    assert feats[0] > 0 > feats[1]
    assert feats[0] == pytest.approx(-feats[1])  # symmetric around the standard's 50% error rate
    assert feats[2] == pytest.approx(0.0)  # as easy as its standard's typical item
    assert feats[3] == 0.0  # never attempted
    shrunk = difficulty_features(item, stds, correct, n_items=4, n_standards=2, prior=10.0)
    assert 0 < shrunk[0] < feats[0]  # pseudo-attempts pull rare items toward their standard


def test_training_rows_never_see_their_own_label_in_the_difficulty_feature() -> None:
    # q3 is answered by one learner only: from the other folds it is unknown (feature 0)
    class Table:
        item_ids, standard_ids = ("q1", "q3"), ("A",)
        learner_offsets = np.array([0, 2, 4, 6, 8, 10, 12])
        item = np.array([0, 0] * 5 + [0, 1], dtype=np.int32)
        standard_offsets = np.arange(13)
        standard_indices = np.zeros(12, dtype=np.int32)
        correct = np.array([1, 0] * 5 + [1, 0], dtype=np.float32)

    model = LogisticModel(neural_config(["A"], ["q1", "q3"]))
    crossed = model.encode_table(Table(), cross_fit=True)
    assert crossed.difficulty[11] == 0.0
    model.set_item_difficulty(difficulty_features(crossed.item, crossed.standards, crossed.correct, 2, 1, 10.0))
    assert model.encode_table(Table()).difficulty[11] > 0  # the full-data feature does see it


# ------------------------------------------------------------------------------------------ serving
@pytest.mark.parametrize("name", sorted(SMALL))
def test_prediction_of_an_attempt_ignores_its_own_label_and_later_ones(name: str) -> None:
    model = small(name)
    labels = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    base = model.predict_sequence(events(labels))
    flipped = labels.copy()
    flipped[4] = 1.0 - flipped[4]
    changed = model.predict_sequence(events(flipped))
    np.testing.assert_allclose(changed[:5], base[:5], rtol=1e-6)  # attempts 0..4 do not see label 4
    assert not np.allclose(changed[5:], base[5:])  # later attempts do


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unseen_items_are_scored_from_standards_and_catalog_difficulty(name: str) -> None:
    model = small(name)
    state = model.replay(events([1.0, 0.0, 1.0, 1.0]))
    easy, typical, hard, noise = model.predict_items(
        state,
        [
            ItemSpec("new-1", ("A",), 0.2),
            ItemSpec("new-2", ("A",), 0.5),
            ItemSpec("new-3", ("A",), 0.8),
            ItemSpec("new-4", ("A", "not-a-standard"), 0.5),
        ],
    )
    assert noise == pytest.approx(typical)  # unknown standards are ignored
    assert typical == pytest.approx(model.mastery(state)["A"])  # mastery = a typical item of the standard
    assert (easy - typical) * (typical - hard) > 0  # difficulty moves the prediction monotonically
    # a trained item keeps its learned difficulty whatever the catalog says
    model.set_item_difficulty(np.array([2.0, 0.0, 0.0], dtype=np.float32))
    a, b = model.predict_items(state, [ItemSpec("q1", ("A",), 0.1), ItemSpec("q1", ("A",), 0.9)])
    assert a == b


def test_logistic_logit_by_hand() -> None:
    model = LogisticModel(neural_config(["A", "B"], ["q1"]))
    net = model.net
    with torch.no_grad():
        net.bias.fill_(0.5)
        net.easy.weight[:2, 0] = torch.tensor([1.0, -1.0])
        net.win_raw.weight[:2, 0] = torch.tensor([math.log(math.e - 1), 0.0])  # softplus -> 1.0, log 2
        net.fail.weight[:2, 0] = torch.tensor([-0.5, 0.0])
        net.win_all_raw.fill_(-100.0)  # softplus ~ 0
        net.fail_all.fill_(0.0)
    model.set_item_difficulty(np.array([0.4], dtype=np.float32))
    state = model.replay([Event("q1", ("A",), 1.0), Event("x", ("A",), 0.0), Event("x", ("A",), 1.0)])
    # A: 2 successes, 1 failure. logit = 0.5 + 1 + 1 * log(3) - 0.5 * log(2) - 1 * 0.4
    expected = 0.5 + 1.0 + math.log(3) - 0.5 * math.log(2) - 0.4
    p = model.predict_items(state, [ItemSpec("q1", ("A",))])[0]
    assert p == pytest.approx(1 / (1 + math.exp(-expected)), rel=1e-5)


def test_serving_weights_follow_parameter_changes_and_stale_batches_are_reencoded() -> None:
    model = small("dkt")
    state = model.replay(events([1.0, 0.0]))
    batch = model.encode_items([ItemSpec("q1", ("A",))])
    before = model.predict(state, batch)[0]
    with torch.no_grad():
        model.net.out.bias.add_(1.0)  # an optimizer step does the same: an in-place change
    after = model.predict(state, batch)[0]
    assert after > before
    assert after == pytest.approx(model.predict_items(state, [ItemSpec("q1", ("A",))])[0])
    with pytest.raises(ValueError, match="encoded by another model"):
        small("dkt").predict(state, batch)


def test_load_weights_names_the_mismatch() -> None:
    model = small("dkt")
    arrays = model.weights()
    with pytest.raises(ValueError, match="missing"):
        model.load_weights({k: v for k, v in arrays.items() if k != "net.out.bias"})
    arrays["net.out.bias"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"net.out.bias has shape \(3,\)"):
        model.load_weights(arrays)


def test_unknown_hyper_parameter_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown dkt hyper-parameter.*hiden"):
        DKTModel(neural_config(STANDARDS, ITEMS, {"hiden": 3}))


# ------------------------------------------------------------------------------------------ akt
def test_band_attention_sees_only_its_window_and_decays_with_distance() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 9, 4) for _ in range(3))
    decay = torch.tensor([0.5])
    out = band_attention(q, k, v, window=3, include_self=False, decay=decay, sink=torch.zeros(1))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 2], v2[:, :, 2] = 5.0, 5.0  # position 2 is inside the window of queries 3..5 only
    out2 = band_attention(q, k2, v2, window=3, include_self=False, decay=decay, sink=torch.zeros(1))
    changed = ~torch.isclose(out, out2).all(dim=-1)[0, 0]
    assert changed.tolist() == [False, False, False, True, True, True, False, False, False]
    # zero scores: the weights are exp(-decay * distance) (normalized with the sink's exp(0))
    ones = torch.zeros(1, 1, 3, 1)
    values = torch.tensor([[[[1.0], [2.0], [4.0]]]])
    out3 = band_attention(
        ones, ones, values, window=3, include_self=False, decay=torch.tensor([math.log(2)]), sink=torch.zeros(1)
    )
    weights = np.array([0.25, 0.5])  # keys 0 and 1 seen from query 2: distances 2 and 1
    assert out3[0, 0, 2, 0].item() == pytest.approx((weights * [1.0, 2.0]).sum() / (weights.sum() + 1.0))


def test_akt_state_is_bounded_by_its_window() -> None:
    model = small("akt")
    long_state = model.replay(events([1.0, 0.0] * 20))
    assert long_state["rk"].shape == (4, 2, 4) and int(long_state["n"][0]) == 40
