"""PNG artifacts of a training run: a calibration (reliability) plot and learning curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (also under torchrun and in CI)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.metrics import calibration_bins, ece  # noqa: E402

__all__ = ["calibration_plot", "learning_curves"]


def calibration_plot(y: np.ndarray, p: np.ndarray, path: str | Path, title: str = "", n_bins: int = 10) -> Path:
    """Mean observed success against mean predicted probability per bin, with the bin counts."""
    path = Path(path)
    mean_p, mean_y, count = calibration_bins(y, p, n_bins)
    used = count > 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    top.plot(mean_p[used], mean_y[used], marker="o", label=f"model (ECE {ece(y, p, n_bins):.3f})")
    top.set_ylabel("observed success rate")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title(title or "calibration on the test learners")
    edges = np.linspace(0, 1, n_bins + 1)
    bottom.bar(edges[:-1], count, width=1 / n_bins, align="edge", color="tab:blue", alpha=0.6)
    bottom.set_xlabel("predicted P(correct)")
    bottom.set_ylabel("attempts")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves(history: Sequence[Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    """Training and validation loss, and validation AUC, per epoch."""
    path = Path(path)
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    loss_ax.plot(epochs, [h["valid_log_loss"] for h in history], marker="o", label="valid")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("log-loss")
    loss_ax.legend()
    auc_ax.plot(epochs, [h["valid_auc"] for h in history], marker="o", color="tab:green")
    auc_ax.set_xlabel("epoch")
    auc_ax.set_ylabel("validation AUC")
    fig.suptitle(title or "learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
