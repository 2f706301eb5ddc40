"""Metrics of next-response prediction: AUC, accuracy, RMSE, log-loss, ECE (numpy only).

Labels may be scores in [0, 1]: RMSE, log-loss and ECE use them as they are; AUC and accuracy
binarize them at 0.5 (a score of at least 0.5 counts as a success).
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "auc", "calibration_bins", "ece", "evaluate_predictions", "log_loss", "rmse"]

_EPS = 1e-7


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=np.float64).reshape(-1), np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {len(y)} vs {len(p)}")
    if len(y) == 0:
        raise ValueError("no predictions to evaluate")
    return y, p


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties count one half.

    Returns NaN when only one class is present.

    >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> auc([0, 1], [0.5, 0.5])
    0.5
    """
    y, p = _check(y, p)
    positive = y >= 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(p)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of attempts where ``p >= 0.5`` agrees with ``y >= 0.5``."""
    y, p = _check(y, p)
    return float(np.mean((p >= 0.5) == (y >= 0.5)))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    y, p = _check(y, p)
    return float(np.sqrt(np.mean((p - y) ** 2)))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy in nats (predictions clipped to [1e-7, 1 - 1e-7]).

    >>> round(log_loss([1, 0], [0.5, 0.5]), 6)
    0.693147
    """
    y, p = _check(y, p)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width bins of ``p`` over [0, 1]: (mean prediction, mean label, count) per bin.

    Empty bins have NaN means and count 0; ``p == 1`` falls in the last bin.
    """
    y, p = _check(y, p)
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=n_bins) / count
        mean_y = np.bincount(index, weights=y, minlength=n_bins) / count
    return mean_p, mean_y, count


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error: ``sum_b (n_b / n) * |mean p_b - mean y_b|`` over equal-width bins.

    >>> ece([0, 1, 1, 1], [0.2, 0.2, 0.9, 0.9])   # bin 0.2: |0.2 - 0.5| = 0.3; bin 0.9: |0.9 - 1| = 0.1
    0.2
    """
    mean_p, mean_y, count = calibration_bins(y, p, n_bins)
    used = count > 0
    return float(np.round(np.sum(count[used] * np.abs(mean_p[used] - mean_y[used])) / count.sum(), 12))


def evaluate_predictions(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Every metric at once, keys ``{prefix}auc``, ``accuracy``, ``rmse``, ``log_loss``, ``ece``, ``n``."""
    y, p = _check(y, p)
    return {
        f"{prefix}auc": auc(y, p),
        f"{prefix}accuracy": accuracy(y, p),
        f"{prefix}rmse": rmse(y, p),
        f"{prefix}log_loss": log_loss(y, p),
        f"{prefix}ece": ece(y, p),
        f"{prefix}n": float(len(y)),
    }
