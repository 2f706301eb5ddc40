"""A PFA / Best-LR style logistic model (Pavlik et al. 2009; Gervet et al. 2020).

For an attempt on item ``i`` aligned to standards ``S``::

    logit = b + sum_{s in S} (easy[s] + win[s] * log1p(successes_s) + fail[s] * log1p(failures_s))
              + win_all * log1p(successes) + fail_all * log1p(failures) - w_mu * mu_i

where the counts are the learner's earlier attempts (on standard ``s``, or on anything) and
``mu_i`` is the item difficulty (difficulty feature + learned item residual, as in
:mod:`models.neural`). Success weights go through a softplus, so they are never negative: a
correct answer never lowers mastery of any standard (``monotonic = True``).

The state is the count vectors (successes and failures per standard, and in total): ``update``
adds the response to the counts of the event's standards, O(number of standards of the event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import LearnerState
from models.neural import Attempt, NeuralModel, SequenceBatch, softplus

__all__ = ["LogisticModel"]


class LogisticNet(nn.Module):
    def __init__(self, n_items: int, n_standards: int, item_residual: bool):
        super().__init__()
        pad = n_standards
        self.bias = nn.Parameter(torch.zeros(()))
        self.easy = nn.Embedding(n_standards + 1, 1, padding_idx=pad)
        self.win_raw = nn.Embedding(n_standards + 1, 1, padding_idx=pad)
        self.fail = nn.Embedding(n_standards + 1, 1, padding_idx=pad)
        self.win_all_raw = nn.Parameter(torch.full((), -2.0))
        self.fail_all = nn.Parameter(torch.zeros(()))
        self.mu_weight = nn.Parameter(torch.ones(()))
        self.residual = nn.Embedding(n_items + 1, 1, padding_idx=n_items) if item_residual else None
        with torch.no_grad():
            self.easy.weight.zero_()
            self.win_raw.weight.fill_(-2.0)  # softplus(-2) = 0.13: a small positive start
            self.fail.weight.zero_()
            if self.residual is not None:
                self.residual.weight.zero_()

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        pad = self.easy.padding_idx
        assert pad is not None  # set in __init__
        real = (batch.standards != pad).float()  # (B, T, K)
        per_standard = (
            self.easy(batch.standards).squeeze(-1)
            + F.softplus(self.win_raw(batch.standards).squeeze(-1)) * torch.log1p(batch.std_success)
            + self.fail(batch.standards).squeeze(-1) * torch.log1p(batch.std_failure)
        ) * real  # (B, T, K)
        mu = batch.difficulty
        if self.residual is not None:
            mu = mu + self.residual(batch.item).squeeze(-1)
        return (
            self.bias
            + per_standard.sum(-1)
            + F.softplus(self.win_all_raw) * torch.log1p(batch.total_success)
            + self.fail_all * torch.log1p(batch.total_failure)
            - self.mu_weight * mu
        )  # (B, T)


class LogisticModel(NeuralModel):
    """Best-LR: item difficulty, standard easiness, log-scaled success/failure counts.

    >>> from models.neural import neural_config
    >>> from models.base import Event
    >>> model = LogisticModel(neural_config(["A", "B"], ["q1"]))
    >>> state = model.update(model.init_state(), Event("q1", ("A",), 1.0))
    >>> state["success"].tolist(), state["total"].tolist()
    ([1.0, 0.0], [1.0, 0.0])
    """

    name = "logistic"
    monotonic = True
    defaults: ClassVar[Mapping[str, Any]] = {}
    learning_rate: ClassVar[float] = 1e-2

    def build_net(self) -> nn.Module:
        return LogisticNet(len(self.config["items"]), len(self.standards), bool(self.hyper["item_residual"]))

    def derive(self, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.n_standards
        w["win"] = softplus(w["win_raw.weight"][:n, 0])
        w["easy_vec"] = w["easy.weight"][:n, 0]
        w["fail_vec"] = w["fail.weight"][:n, 0]
        w["win_all"] = softplus(w["win_all_raw"])
        return w

    def init_state(self) -> LearnerState:
        n = self.n_standards
        return {"success": np.zeros(n), "failure": np.zeros(n), "total": np.zeros(2)}

    def step(self, state: LearnerState, w: Mapping[str, np.ndarray], attempt: Attempt) -> LearnerState:
        success, failure, total = state["success"].copy(), state["failure"].copy(), state["total"].copy()
        success[attempt.standards] += attempt.correct
        failure[attempt.standards] += 1.0 - attempt.correct
        total += (attempt.correct, 1.0 - attempt.correct)
        return {"success": success, "failure": failure, "total": total}

    def prepare_candidates(self, w: Mapping[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mu = cand["difficulty"].astype(np.float32)
        if "residual.weight" in w:
            mu = mu + w["residual.weight"][cand["item"], 0]
        cand["offset"] = (w["bias"] - w["mu_weight"] * mu).astype(np.float32)  # (N,)
        return cand

    def score(self, state: LearnerState, w: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]) -> np.ndarray:
        per_standard = (
            w["easy_vec"]
            + w["win"] * np.log1p(state["success"]).astype(np.float32)
            + w["fail_vec"] * np.log1p(state["failure"]).astype(np.float32)
        )  # (S,)
        padded = np.append(per_standard, np.float32(0.0))
        s, f = state["total"]
        shared = w["win_all"] * np.float32(np.log1p(s)) + w["fail_all"] * np.float32(np.log1p(f))
        return cand["offset"] + padded[cand["standards"]].sum(axis=1) + shared  # (N,)
