"""The promotion gate: checks a model must pass before it serves a deployment's catalog.

One implementation for ``zpd models promote`` and for every server reload:

- **probabilities**: predictions over the catalog are finite and in (0, 1), before and after an
  update;
- **coverage**: the share of the deployment's standards, and of its catalog items, that the
  *trained* part of the model knows (for a hybrid, its trained part; graph BKT built from the
  graph knows every standard). A model trained on a data set's own skill ids
  ("1", "2"...) knows none of the standards: every prediction would fall back to one number;
- **spread**: on the items the trained part knows, predictions for a new learner are not one
  number (a model that learned nothing, or whose item vocabulary does not match the catalog).

A failed check names itself and its numbers in :class:`GateReport`. The comparison of a
challenger with the champion on recent held-out events is :func:`compare` (it needs events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models.base import Event, ItemSpec, LearnerModel

__all__ = ["Check", "GateReport", "check_model", "compare", "trained_part"]


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass
class GateReport:
    model: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """One line per check: what it measured and whether it passed."""
        return "; ".join(f"{c.name} {'ok' if c.passed else 'FAILED'}: {c.detail}" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def trained_part(model: LearnerModel) -> LearnerModel:
    """The part of ``model`` that predicts from what it learned: a hybrid's trained part, or the
    model itself (graph BKT built from the deployment's graph knows all its standards)."""
    trained = getattr(model, "trained", None)
    return trained if isinstance(trained, LearnerModel) else model


def check_model(
    model: LearnerModel,
    items: Sequence[ItemSpec],
    standards: Sequence[str],
    *,
    min_standard_coverage: float = 0.05,
    min_item_coverage: float = 0.05,
    min_spread: float = 1e-3,
) -> GateReport:
    """Run every check of the gate for a deployment whose catalog is ``items`` and whose
    learnable standards are ``standards``."""
    report = GateReport(model.name)
    if not items:
        report.checks.append(Check("probabilities", False, None, None, "the catalog is empty: nothing to predict"))
        return report
    batch = model.encode_items(list(items))
    state = model.init_state()
    fresh = None
    problem = None
    for when in ("before", "after"):
        probs = np.asarray(model.predict(state, batch), dtype=float)
        if probs.shape != (len(items),) or not np.all(np.isfinite(probs)) or probs.min() <= 0 or probs.max() >= 1:
            problem = f"predictions {when} an update are not probabilities in (0, 1)"
            break
        if fresh is None:
            fresh = probs
        first = items[0]
        state = model.update(state, Event(first.item_id, first.standards, 1.0, 0.0))
    report.checks.append(
        Check("probabilities", problem is None, None, None, problem or f"{len(items)} items, in (0, 1)")
    )
    trained = trained_part(model)
    known = set(trained.standards)
    wanted = list(dict.fromkeys(standards))
    share_standards = sum(1 for s in wanted if s in known) / len(wanted) if wanted else 0.0
    covered_items = [i for i, item in enumerate(items) if any(s in known for s in item.standards)]
    share_items = len(covered_items) / len(items)
    sample = ", ".join(sorted(known)[:3]) + ("..." if len(known) > 3 else "")
    report.checks.append(
        Check(
            "standard coverage",
            share_standards >= min_standard_coverage,
            round(share_standards, 4),
            min_standard_coverage,
            f"the trained part knows {share_standards:.1%} of the {len(wanted)} standards (at least "
            f"{min_standard_coverage:.0%} needed; it knows {len(known)} ids such as {sample or 'none'}"
            + _advice(share_standards, min_standard_coverage),
        )
    )
    report.checks.append(
        Check(
            "item coverage",
            share_items >= min_item_coverage,
            round(share_items, 4),
            min_item_coverage,
            f"{share_items:.1%} of the {len(items)} catalog items are on standards the trained part knows "
            f"(at least {min_item_coverage:.0%} needed)",
        )
    )
    # BKT predicts by standard from shared parameters: a new learner's predictions may rightly be
    # one number; a BKT over the wrong ids fails coverage instead
    if fresh is not None and covered_items and trained.name != "bkt":
        spread = float(np.std(fresh[covered_items]))
        report.checks.append(
            Check(
                "spread",
                spread >= min_spread,
                round(spread, 6),
                min_spread,
                f"predictions for a new learner over the {len(covered_items)} covered items vary by "
                f"{spread:.4f} (standard deviation; at least {min_spread} needed)",
            )
        )
    return report


def _advice(share: float, needed: float) -> str:
    if share >= needed:
        return ")"
    if share == 0:
        return ": none is a standard of the graph; train it with an alignment of its skills to the standards)"
    return ": its data covers too few standards; train on more, or lower [gate] min_standard_coverage)"


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    positives, negatives = p[y == 1], p[y == 0]
    if not len(positives) or not len(negatives):
        return None
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([positives, negatives])
    for v in np.unique(values):  # ties share their mean rank
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return float(
        (ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2) / (len(positives) * len(negatives))
    )


def _metrics(
    model: LearnerModel, learners: Sequence[Sequence[Event]], scored: Sequence[Sequence[bool]] | None = None
) -> dict[str, float | None]:
    ys, ps = [], []
    for k, events in enumerate(learners):
        kept = [j for j, e in enumerate(events) if e.correct is not None]
        answers = [events[j] for j in kept]
        if not answers:
            continue
        p = model.predict_sequence(answers)
        y = np.array([float(e.correct >= 0.5) for e in answers])
        if scored is not None:  # every answer is read in turn; only those marked are scored
            mask = np.array([scored[k][j] for j in kept], dtype=bool)
            p, y = np.asarray(p)[mask], y[mask]
        if len(y):
            ps.append(p)
            ys.append(y)
    if not ys:
        return {"auc": None, "log_loss": None, "calibration_error": None, "n": 0}
    y, p = np.concatenate(ys), np.clip(np.concatenate(ps), 1e-6, 1 - 1e-6)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(
        abs(y[bins == b].mean() - p[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any()
    )
    return {
        "auc": _auc(y, p),
        "log_loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
        "calibration_error": float(ece),
        "n": int(len(y)),
    }


def compare(
    challenger: LearnerModel,
    champion: LearnerModel,
    learners: Sequence[Sequence[Event]],
    *,
    max_auc_drop: float = 0.0,
    max_log_loss_rise: float = 0.0,
    scored: Sequence[Sequence[bool]] | None = None,
) -> Check:
    """Challenger against champion on the same held-out learners' events (each learner's events
    in order; each prediction sees only that learner's earlier events): the challenger passes when
    its AUC is not lower and its log-loss not higher than the champion's, within the margins.
    With ``scored`` (one flag per event of each learner), only the flagged answers are scored;
    every answer is still read before the ones after it."""
    mine, theirs = _metrics(challenger, learners, scored), _metrics(champion, learners, scored)
    if not mine["n"]:
        return Check("challenger vs champion", True, None, None, "no held-out answers to compare on")
    auc_ok = mine["auc"] is None or theirs["auc"] is None or mine["auc"] >= theirs["auc"] - max_auc_drop
    loss_ok = mine["log_loss"] <= theirs["log_loss"] + max_log_loss_rise  # type: ignore[operator]
    detail = (
        f"on {mine['n']} held-out answers: AUC {_fmt(mine['auc'])} vs {_fmt(theirs['auc'])}, log-loss "
        f"{_fmt(mine['log_loss'])} vs {_fmt(theirs['log_loss'])}, calibration error "
        f"{_fmt(mine['calibration_error'])} vs {_fmt(theirs['calibration_error'])} (challenger vs champion)"
    )
    return Check("challenger vs champion", auc_ok and loss_ok, mine["auc"], theirs["auc"], detail)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
