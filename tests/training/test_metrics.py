"""Metrics on small cases computed by hand (and AUC against a brute-force pair count)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import accuracy, auc, calibration_bins, ece, evaluate_predictions, log_loss, rmse


def brute_force_auc(y, p) -> float:
    pos = [pi for yi, pi in zip(y, p) if yi == 1]
    neg = [pi for yi, pi in zip(y, p) if yi == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_auc_hand_computed_with_ties() -> None:
    # positives score 0.8, 0.4, 0.4; negatives 0.4, 0.2.
    # pairs: (0.8 vs 0.4) 1, (0.8 vs 0.2) 1, (0.4 vs 0.4) 0.5 twice, (0.4 vs 0.2) 1 twice -> 5 / 6
    y = [1, 1, 1, 0, 0]
    p = [0.8, 0.4, 0.4, 0.4, 0.2]
    assert auc(y, p) == pytest.approx(5 / 6)


def test_auc_extremes_and_single_class() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert math.isnan(auc([1, 1], [0.2, 0.9]))


def test_auc_matches_pair_counting_on_random_data_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300), 1)  # only 11 distinct values: ties everywhere
    assert auc(y, p) == pytest.approx(brute_force_auc(y, p), abs=1e-12)


def test_auc_binarizes_scores_at_one_half() -> None:
    assert auc([0.2, 0.9, 0.6], [0.1, 0.7, 0.8]) == 1.0


def test_log_loss_accuracy_rmse_by_hand() -> None:
    y, p = [1, 0, 1, 0], [0.9, 0.2, 0.4, 0.5]
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4
    assert log_loss(y, p) == pytest.approx(expected)
    assert accuracy(y, p) == pytest.approx(0.5)  # right on 0.9 and 0.2; 0.4 is a miss, 0.5 predicts success
    assert rmse(y, p) == pytest.approx(math.sqrt((0.01 + 0.04 + 0.36 + 0.25) / 4))
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))  # clipped, finite


def test_ece_by_hand() -> None:
    # bin [0.1, 0.2): p mean 0.15, y mean 0.5 (2 items); bin [0.9, 1]: p mean 0.95, y mean 1 (2 items)
    y, p = [0, 1, 1, 1], [0.1, 0.2 - 1e-9, 0.9, 1.0]
    assert ece(y, p) == pytest.approx(0.5 * abs(0.15 - 0.5) + 0.5 * abs(0.95 - 1.0), abs=1e-8)
    assert ece([0, 1], [0.0, 1.0]) == 0.0
    mean_p, mean_y, count = calibration_bins(y, p)
    assert count.tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert np.isnan(mean_p[0]) and mean_y[9] == 1.0


def test_evaluate_predictions_keys_and_errors() -> None:
    out = evaluate_predictions([0, 1], [0.3, 0.6], prefix="test_")
    assert set(out) == {"test_auc", "test_accuracy", "test_rmse", "test_log_loss", "test_ece", "test_n"}
    with pytest.raises(ValueError, match="differ in length"):
        auc([0, 1], [0.5])
    with pytest.raises(ValueError, match="no predictions"):
        log_loss([], [])
