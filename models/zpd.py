"""The ``zpd`` learner-state model: a recurrent state with question-aware deep and wide heads.

It joins what DKT and Best-LR each get right, keeping an O(1) incremental update:

* **features** of attempt ``t`` (from the learner's earlier attempts): ``log1p`` of the successes
  and failures on the attempt's standards (mean over its standards) and in total;
* **recurrent state**: a GRU reads ``[c q, (1 - c) q, f]`` where ``q`` is the Rasch item embedding
  (standards' embeddings plus item difficulty times their variation vectors) and ``c`` the response;
* **deep head**: ``w . relu(W_h h_{t-1} + W_q q_t + W_f f_t + b)`` (question-aware prediction);
* **wide head**: the Best-LR terms (standard easiness, per-standard weights on the counts, the
  learner's totals, item difficulty), which carry what counts and difficulty say directly.

``logit = deep + wide``. The serving state is the GRU state plus the count vectors: ``update`` is
one GRU step and a few additions, ``predict`` over N candidates is O(N * H') with the candidates'
``W_q q`` precomputed in ``encode_items``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import LearnerState
from models.neural import Attempt, NeuralModel, RaschEmbedding, SequenceBatch, rasch_numpy, sigmoid

__all__ = ["ZPDModel"]

N_FEATURES = 4  # mean log1p successes / failures on the attempt's standards, log1p totals


def _features(batch: SequenceBatch, pad: int) -> torch.Tensor:
    real = (batch.standards != pad).float()  # (B, T, K)
    count = real.sum(-1).clamp(min=1.0)
    mean_s = (torch.log1p(batch.std_success) * real).sum(-1) / count
    mean_f = (torch.log1p(batch.std_failure) * real).sum(-1) / count
    return torch.stack([mean_s, mean_f, torch.log1p(batch.total_success), torch.log1p(batch.total_failure)], -1)


class ZPDNet(nn.Module):
    def __init__(self, n_items: int, n_standards: int, dim: int, hidden: int, out_hidden: int,
                 dropout: float, item_residual: bool):
        super().__init__()
        self.pad = n_standards
        self.embed = RaschEmbedding(n_items, n_standards, dim, item_residual)
        self.rnn = nn.GRU(2 * dim + N_FEATURES, hidden, batch_first=True)
        self.out_h = nn.Linear(hidden, out_hidden)
        self.out_q = nn.Linear(dim, out_hidden, bias=False)
        self.out_f = nn.Linear(N_FEATURES, out_hidden, bias=False)
        self.out = nn.Linear(out_hidden, 1)
        # wide (Best-LR) part
        self.easy = nn.Embedding(n_standards + 1, 1, padding_idx=n_standards)
        self.win = nn.Embedding(n_standards + 1, 1, padding_idx=n_standards)
        self.fail = nn.Embedding(n_standards + 1, 1, padding_idx=n_standards)
        self.totals = nn.Linear(2, 1, bias=False)
        self.mu_weight = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():
            for emb in (self.easy, self.win, self.fail):
                emb.weight.zero_()
            self.totals.weight.zero_()

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        q, mu = self.embed(batch.item, batch.standards, batch.difficulty)  # (B, T, E), (B, T)
        f = _features(batch, self.pad)  # (B, T, 4)
        c = batch.correct.unsqueeze(-1)
        h, _ = self.rnn(torch.cat([q * c, q * (1 - c), f], dim=-1))  # (B, T, H)
        h_before = F.pad(h[:, :-1], (0, 0, 1, 0))  # (B, T, H): state before each attempt
        z = torch.relu(self.out_h(self.drop(h_before)) + self.out_q(q) + self.out_f(f))  # (B, T, H')
        deep = self.out(self.drop(z)).squeeze(-1)  # (B, T)
        real = (batch.standards != self.pad).float()
        wide = ((self.easy(batch.standards).squeeze(-1)
                 + self.win(batch.standards).squeeze(-1) * torch.log1p(batch.std_success)
                 + self.fail(batch.standards).squeeze(-1) * torch.log1p(batch.std_failure)) * real).sum(-1)
        wide = wide + self.totals(f[..., 2:]).squeeze(-1) - self.mu_weight * mu
        return deep + wide  # (B, T)


class ZPDModel(NeuralModel):
    """Recurrent state + question-aware deep head + Best-LR wide head (see the module docstring)."""

    name = "zpd"
    defaults: ClassVar[Mapping[str, Any]] = {"dim": 64, "hidden": 128, "out_hidden": 64, "dropout": 0.2}
    learning_rate: ClassVar[float] = 2e-3

    def build_net(self) -> nn.Module:
        h = self.hyper
        return ZPDNet(len(self.items), len(self.standards), int(h["dim"]), int(h["hidden"]), int(h["out_hidden"]),
                      float(h["dropout"]), bool(h["item_residual"]))

    def derive(self, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.n_standards
        for name in ("easy", "win", "fail"):
            w[f"{name}_vec"] = np.append(w[f"{name}.weight"][:n, 0], np.float32(0.0))  # padded with 0
        return w

    def init_state(self) -> LearnerState:
        n = self.n_standards
        return {"h": np.zeros(int(self.hyper["hidden"]), dtype=np.float32),
                "success": np.zeros(n + 1, dtype=np.float32), "failure": np.zeros(n + 1, dtype=np.float32),
                "total": np.zeros(2, dtype=np.float32)}

    @staticmethod
    def _attempt_features(state: LearnerState, standards: np.ndarray) -> np.ndarray:
        if len(standards):
            s = np.log1p(state["success"][standards]).mean()
            f = np.log1p(state["failure"][standards]).mean()
        else:
            s = f = 0.0
        return np.array([s, f, *np.log1p(state["total"])], dtype=np.float32)

    def step(self, state: LearnerState, w: Mapping[str, np.ndarray], attempt: Attempt) -> LearnerState:
        q, _ = rasch_numpy(w, "embed", np.array(attempt.item), attempt.standards[None, :], np.array(attempt.difficulty))
        q = q.reshape(-1)
        feats = self._attempt_features(state, attempt.standards)
        x = np.concatenate([q * attempt.correct, q * (1.0 - attempt.correct), feats]).astype(np.float32)
        h = state["h"]
        gi = w["rnn.weight_ih_l0"] @ x + w["rnn.bias_ih_l0"]
        gh = w["rnn.weight_hh_l0"] @ h + w["rnn.bias_hh_l0"]
        ir, iz, in_ = np.split(gi, 3)  # GRU gate order r, z, n
        hr, hz, hn = np.split(gh, 3)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        success, failure = state["success"].copy(), state["failure"].copy()
        success[attempt.standards] += attempt.correct
        failure[attempt.standards] += 1.0 - attempt.correct
        total = state["total"] + np.array([attempt.correct, 1.0 - attempt.correct], dtype=np.float32)
        return {"h": ((1 - z) * n + z * h).astype(np.float32), "success": success, "failure": failure, "total": total}

    def prepare_candidates(self, w: Mapping[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        q, mu = rasch_numpy(w, "embed", cand["item"], cand["standards"], cand["difficulty"])  # (N, E), (N,)
        cand["q_proj"] = (q @ w["out_q.weight"].T).astype(np.float32)  # (N, H')
        cand["offset"] = (w["out.bias"][0] - w["mu_weight"] * mu).astype(np.float32)  # (N,)
        cand["real"] = (cand["standards"] != self.n_standards).astype(np.float32)  # (N, K)
        cand["count"] = np.maximum(cand["real"].sum(1), 1.0).astype(np.float32)  # (N,)
        return cand

    def score(self, state: LearnerState, w: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]) -> np.ndarray:
        stds, real = cand["standards"], cand["real"]  # (N, K)
        ls, lf = np.log1p(state["success"]), np.log1p(state["failure"])  # (S+1,), padding row is 0
        mean_s = (ls[stds] * real).sum(1) / cand["count"]
        mean_f = (lf[stds] * real).sum(1) / cand["count"]
        totals = np.log1p(state["total"]).astype(np.float32)
        feats = np.stack([mean_s, mean_f, np.full_like(mean_s, totals[0]), np.full_like(mean_s, totals[1])], 1)
        a = w["out_h.weight"] @ state["h"] + w["out_h.bias"]  # (H',)
        z = np.maximum(cand["q_proj"] + a + feats @ w["out_f.weight"].T, 0.0)  # (N, H')
        deep = z @ w["out.weight"][0]
        wide = ((w["easy_vec"][stds] + w["win_vec"][stds] * ls[stds] + w["fail_vec"][stds] * lf[stds]) * real).sum(1)
        wide = wide + totals @ w["totals.weight"][0]
        return deep + wide + cand["offset"]  # (N,)

