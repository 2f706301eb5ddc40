"""Deep Knowledge Tracing (Piech et al. 2015) with item difficulty and multi-standard attempts.

An attempt is embedded as a Rasch item vector ``q`` (sum of its standards' embeddings plus the
item difficulty times their variation vectors, :class:`models.neural.RaschEmbedding`) split by
the response: ``x = [c * q, (1 - c) * q]``. An LSTM (or GRU) reads ``x_1..x_t``; attempt ``t+1``
is predicted from the hidden state after ``t`` and the candidate's own ``q``::

    logit = w . relu(W_h h_t + W_q q_{t+1} + b) + b0 - w_mu * mu_{t+1}

The serving state is the recurrent state (``h``, and ``c`` for an LSTM): ``update`` is one cell
step (O(H^2), independent of history length); ``predict`` over N candidates costs O(N * H')
because ``W_q q`` is precomputed per candidate in ``encode_items``.
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

__all__ = ["DKTModel"]


class DKTNet(nn.Module):
    def __init__(
        self,
        n_items: int,
        n_standards: int,
        dim: int,
        hidden: int,
        out_hidden: int,
        cell: str,
        dropout: float,
        item_residual: bool,
    ):
        super().__init__()
        self.embed = RaschEmbedding(n_items, n_standards, dim, item_residual)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(2 * dim, hidden, batch_first=True)
        self.out_h = nn.Linear(hidden, out_hidden)
        self.out_q = nn.Linear(dim, out_hidden, bias=False)
        self.out = nn.Linear(out_hidden, 1)
        self.mu_weight = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(dropout)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        q, mu = self.embed(batch.item, batch.standards, batch.difficulty)  # (B, T, E), (B, T)
        c = batch.correct.unsqueeze(-1)
        h, _ = self.rnn(torch.cat([q * c, q * (1 - c)], dim=-1))  # (B, T, H)
        h_before = F.pad(h[:, :-1], (0, 0, 1, 0))  # (B, T, H): state before each attempt
        z = torch.relu(self.out_h(self.drop(h_before)) + self.out_q(q))  # (B, T, H')
        return self.out(self.drop(z)).squeeze(-1) - self.mu_weight * mu  # (B, T)


class DKTModel(NeuralModel):
    """DKT with Rasch item embeddings; ``cell`` = ``"lstm"`` (default) or ``"gru"``."""

    name = "dkt"
    defaults: ClassVar[Mapping[str, Any]] = {
        "dim": 64,
        "hidden": 128,
        "out_hidden": 64,
        "cell": "lstm",
        "dropout": 0.2,
    }
    learning_rate: ClassVar[float] = 2e-3

    def build_net(self) -> nn.Module:
        h = self.hyper
        if h["cell"] not in ("lstm", "gru"):
            raise ValueError(f"dkt cell must be 'lstm' or 'gru', got {h['cell']!r}")
        return DKTNet(
            len(self.items),
            len(self.standards),
            int(h["dim"]),
            int(h["hidden"]),
            int(h["out_hidden"]),
            h["cell"],
            float(h["dropout"]),
            bool(h["item_residual"]),
        )

    def init_state(self) -> LearnerState:
        hidden = int(self.hyper["hidden"])
        state = {"h": np.zeros(hidden, dtype=np.float32)}
        if self.hyper["cell"] == "lstm":
            state["c"] = np.zeros(hidden, dtype=np.float32)
        return state

    def step(self, state: LearnerState, w: Mapping[str, np.ndarray], attempt: Attempt) -> LearnerState:
        q, _ = rasch_numpy(w, "embed", np.array(attempt.item), attempt.standards[None, :], np.array(attempt.difficulty))
        q = q.reshape(-1)
        x = np.concatenate([q * attempt.correct, q * (1.0 - attempt.correct)]).astype(np.float32)
        h = state["h"]
        gi = w["rnn.weight_ih_l0"] @ x + w["rnn.bias_ih_l0"]
        gh = w["rnn.weight_hh_l0"] @ h + w["rnn.bias_hh_l0"]
        if "c" in state:  # LSTM, gate order i, f, g, o
            i, f, g, o = np.split(gi + gh, 4)
            c = sigmoid(f) * state["c"] + sigmoid(i) * np.tanh(g)
            return {"h": (sigmoid(o) * np.tanh(c)).astype(np.float32), "c": c.astype(np.float32)}
        ir, iz, in_ = np.split(gi, 3)  # GRU, gate order r, z, n
        hr, hz, hn = np.split(gh, 3)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        return {"h": ((1 - z) * n + z * h).astype(np.float32)}

    def prepare_candidates(self, w: Mapping[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        q, mu = rasch_numpy(w, "embed", cand["item"], cand["standards"], cand["difficulty"])  # (N, E), (N,)
        cand["q_proj"] = (q @ w["out_q.weight"].T).astype(np.float32)  # (N, H')
        cand["offset"] = (w["out.bias"][0] - w["mu_weight"] * mu).astype(np.float32)  # (N,)
        return cand

    def score(self, state: LearnerState, w: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]) -> np.ndarray:
        a = w["out_h.weight"] @ state["h"] + w["out_h.bias"]  # (H',)
        z = np.maximum(cand["q_proj"] + a, 0.0)  # (N, H')
        return z @ w["out.weight"][0] + cand["offset"]  # (N,)
