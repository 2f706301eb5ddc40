"""An attention model in the AKT family (Ghosh et al. 2020), with an exact incremental path.

* **Rasch embeddings**: question ``q = sum_s S[s] + mu * sum_s V[s]`` (:class:`RaschEmbedding`) and
  interaction ``x = q + r[c] + mu * g[c]`` (response embedding plus difficulty times a response
  variation vector; a score in [0, 1] interpolates between the two responses).
* **Knowledge encoder**: one causal self-attention layer over the interactions,
  ``y_t = LayerNorm(x_t + Attn(x_t; x_{t-W+1..t}))``.
* **Knowledge retriever**: the prediction for attempt ``t`` attends with its question ``q_t`` to
  the keys ``q_tau`` and values ``y_tau`` of the previous ``W`` attempts, plus a "sink" slot
  (value 0) so a first attempt has something to attend to.
* **Monotonic, distance-aware attention**: every score gets ``- theta_h * (t - tau)`` with a
  learned ``theta_h >= 0`` per head, i.e. attention weights decay exponentially with the distance
  in attempts (the additive form of AKT's exponential decay; AKT's context-aware distance is
  replaced by the plain distance so that cached encodings stay exact).

Every attention is limited to a window of the last ``W`` attempts (``window``), in training and in
serving alike, which is what makes the incremental path exact rather than approximate.

**Per-event cost (honestly):** the state keeps the projected keys and values of the last ``W``
interactions (4 arrays of ``W x dim`` float32: 100 KB for W=100, dim=64). ``update`` projects the
new interaction and runs one attention over the window: O(W * dim + dim^2), plus an O(W * dim)
copy to shift the window. ``predict`` for N candidates is O(N * W * dim + N * dim^2) (each candidate
attends over the window): this is not O(1) in W, it is bounded by W.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import LearnerState
from models.neural import Attempt, NeuralModel, RaschEmbedding, SequenceBatch, layer_norm, rasch_numpy, softplus

__all__ = ["AKTModel", "band_attention"]


def band_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    include_self: bool,
    decay: torch.Tensor,
    sink: torch.Tensor | None = None,
) -> torch.Tensor:
    """Windowed causal attention with exponential distance decay, computed in query chunks.

    ``q, k, v``: (B, H, T, D). Query ``t`` sees keys ``tau`` with ``0 <= t - tau < window``
    (``include_self``) or ``1 <= t - tau <= window``; scores are ``q.k / sqrt(D) - decay_h * (t - tau)``.
    ``sink`` (H,) adds a slot with that logit and a zero value. Memory is O(B H T window).
    """
    b, h, t, d = q.shape
    outs = []
    for start in range(0, t, window):
        stop = min(t, start + window)
        lo = max(0, start - window)
        scores = q[:, :, start:stop] @ k[:, :, lo:stop].transpose(-1, -2) / math.sqrt(d)  # (B, H, C, C')
        dist = torch.arange(start, stop)[:, None] - torch.arange(lo, stop)[None, :]  # (C, C')
        allowed = (dist >= 0) & (dist < window) if include_self else (dist >= 1) & (dist <= window)
        scores = scores - decay.view(1, h, 1, 1) * dist.clamp(min=0).to(scores.dtype)
        scores = scores.masked_fill(~allowed, float("-inf"))
        if sink is not None:
            scores = torch.cat([scores, sink.view(1, h, 1, 1).expand(b, h, stop - start, 1)], dim=-1)
        weights = torch.softmax(scores, dim=-1)
        if sink is not None:
            weights = weights[..., :-1]
        outs.append(weights @ v[:, :, lo:stop])  # (B, H, C, D)
    return torch.cat(outs, dim=2) if outs else q.new_zeros(q.shape)


class AKTNet(nn.Module):
    def __init__(
        self,
        n_items: int,
        n_standards: int,
        dim: int,
        heads: int,
        window: int,
        out_hidden: int,
        dropout: float,
        item_residual: bool,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"akt dim ({dim}) must be a multiple of heads ({heads})")
        self.heads, self.window = heads, window
        self.embed = RaschEmbedding(n_items, n_standards, dim, item_residual)
        self.response = nn.Parameter(torch.randn(2, dim) * 0.3)  # r[0], r[1]
        self.response_variation = nn.Parameter(torch.randn(2, dim) * 0.05)  # g[0], g[1]
        self.enc_q, self.enc_k, self.enc_v, self.enc_o = (nn.Linear(dim, dim) for _ in range(4))
        self.enc_norm = nn.LayerNorm(dim)
        self.ret_q, self.ret_k, self.ret_v, self.ret_o = (nn.Linear(dim, dim) for _ in range(4))
        self.enc_decay_raw = nn.Parameter(torch.linspace(-4.0, 0.0, heads))
        self.ret_decay_raw = nn.Parameter(torch.linspace(-4.0, 0.0, heads))
        self.sink = nn.Parameter(torch.zeros(heads))
        self.out_o = nn.Linear(dim, out_hidden)
        self.out_q = nn.Linear(dim, out_hidden, bias=False)
        self.out = nn.Linear(out_hidden, 1)
        self.mu_weight = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, H, T, D/H)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)  # (B, T, D)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        q, mu = self.embed(batch.item, batch.standards, batch.difficulty)  # (B, T, D), (B, T)
        c = batch.correct.unsqueeze(-1)
        r = c * self.response[1] + (1 - c) * self.response[0]
        g = c * self.response_variation[1] + (1 - c) * self.response_variation[0]
        x = q + r + mu.unsqueeze(-1) * g  # (B, T, D)
        enc = band_attention(
            self._heads(self.enc_q(x)),
            self._heads(self.enc_k(x)),
            self._heads(self.enc_v(x)),
            self.window,
            True,
            F.softplus(self.enc_decay_raw),
        )
        y = self.enc_norm(x + self.enc_o(self._merge(enc)))  # (B, T, D)
        ret = band_attention(
            self._heads(self.ret_q(q)),
            self._heads(self.ret_k(q)),
            self._heads(self.ret_v(y)),
            self.window,
            False,
            F.softplus(self.ret_decay_raw),
            self.sink,
        )
        z = torch.relu(self.out_o(self.ret_o(self._merge(ret))) + self.out_q(q))  # (B, T, H')
        return self.out(self.drop(z)).squeeze(-1) - self.mu_weight * mu  # (B, T)


class AKTModel(NeuralModel):
    """AKT-family attention model; see the module docstring for the architecture and its costs."""

    name = "akt"
    defaults: ClassVar[Mapping[str, Any]] = {
        "dim": 64,
        "heads": 2,
        "window": 100,
        "out_hidden": 64,
        "dropout": 0.2,
    }
    learning_rate: ClassVar[float] = 1e-3

    def build_net(self) -> nn.Module:
        h = self.hyper
        return AKTNet(
            len(self.items),
            len(self.standards),
            int(h["dim"]),
            int(h["heads"]),
            int(h["window"]),
            int(h["out_hidden"]),
            float(h["dropout"]),
            bool(h["item_residual"]),
        )

    @property
    def _shape(self) -> tuple[int, int, int]:
        heads = int(self.hyper["heads"])
        return int(self.hyper["window"]), heads, int(self.hyper["dim"]) // heads

    def init_state(self) -> LearnerState:
        window, heads, dh = self._shape
        empty = np.zeros((window, heads, dh), dtype=np.float32)
        return {
            "ek": empty,
            "ev": empty.copy(),
            "rk": empty.copy(),
            "rv": empty.copy(),
            "n": np.zeros(1, dtype=np.int64),
        }

    def derive(self, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        w["enc_decay"] = softplus(w["enc_decay_raw"])
        w["ret_decay"] = softplus(w["ret_decay_raw"])
        # out_o(ret_o(a)) fused into one affine map
        w["fused_o.weight"] = w["out_o.weight"] @ w["ret_o.weight"]
        w["fused_o.bias"] = w["out_o.weight"] @ w["ret_o.bias"] + w["out_o.bias"]
        return w

    @staticmethod
    def _lin(w: Mapping[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def step(self, state: LearnerState, w: Mapping[str, np.ndarray], attempt: Attempt) -> LearnerState:
        window, heads, dh = self._shape
        q, mu_raw = rasch_numpy(
            w, "embed", np.array(attempt.item), attempt.standards[None, :], np.array(attempt.difficulty)
        )
        q, mu, c = q.reshape(-1), float(mu_raw), attempt.correct
        r = c * w["response"][1] + (1 - c) * w["response"][0]
        g = c * w["response_variation"][1] + (1 - c) * w["response_variation"][0]
        x = (q + r + mu * g).astype(np.float32)  # (D,)
        ek = np.concatenate([state["ek"][1:], self._lin(w, "enc_k", x).reshape(1, heads, dh)])
        ev = np.concatenate([state["ev"][1:], self._lin(w, "enc_v", x).reshape(1, heads, dh)])
        n = state["n"] + 1
        # encoder: the new interaction attends to the window including itself (distance W-1-j)
        valid = np.arange(window) >= window - min(int(n[0]), window)
        dist = (window - 1 - np.arange(window)).astype(np.float32)
        qe = self._lin(w, "enc_q", x).reshape(heads, dh)
        scores = np.einsum("hd,whd->hw", qe, ek) / np.float32(math.sqrt(dh)) - w["enc_decay"][:, None] * dist
        scores = np.where(valid, scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        att = np.einsum("hw,whd->hd", weights, ev).reshape(-1)
        y = layer_norm(x + self._lin(w, "enc_o", att), w["enc_norm.weight"], w["enc_norm.bias"])
        rk = np.concatenate([state["rk"][1:], self._lin(w, "ret_k", q).reshape(1, heads, dh)])
        rv = np.concatenate([state["rv"][1:], self._lin(w, "ret_v", y).reshape(1, heads, dh)])
        f32 = np.float32
        return {"ek": ek.astype(f32), "ev": ev.astype(f32), "rk": rk.astype(f32), "rv": rv.astype(f32), "n": n}

    item_axis: ClassVar[Mapping[str, int]] = {"query": 1}  # (H, N, D/H)

    def prepare_candidates(self, w: Mapping[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _, heads, dh = self._shape
        q, mu = rasch_numpy(w, "embed", cand["item"], cand["standards"], cand["difficulty"])  # (N, D), (N,)
        cand["query"] = np.ascontiguousarray(
            self._lin(w, "ret_q", q).reshape(len(q), heads, dh).transpose(1, 0, 2)
        ).astype(np.float32)  # (H, N, D/H)
        cand["q_proj"] = (q @ w["out_q.weight"].T + w["fused_o.bias"]).astype(np.float32)  # (N, H')
        cand["offset"] = (w["out.bias"][0] - w["mu_weight"] * mu).astype(np.float32)  # (N,)
        return cand

    def score(self, state: LearnerState, w: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]) -> np.ndarray:
        window, heads, dh = self._shape
        n = int(state["n"][0])
        keys = state["rk"].transpose(1, 2, 0)  # (H, D/H, W)
        scores = cand["query"] @ keys / np.float32(math.sqrt(dh))  # (H, N, W)
        dist = (window - np.arange(window)).astype(np.float32)  # slot W-1 is the last attempt: distance 1
        scores -= w["ret_decay"][:, None, None] * dist
        scores[:, :, : window - min(n, window)] = -np.inf
        sink = w["sink"][:, None, None]
        top = np.maximum(scores.max(axis=2, keepdims=True), sink)
        weights = np.exp(scores - top)
        total = weights.sum(axis=2, keepdims=True) + np.exp(sink - top)
        att = (weights / total) @ state["rv"].transpose(1, 0, 2)  # (H, N, D/H)
        att = att.transpose(1, 0, 2).reshape(att.shape[1], -1)  # (N, D)
        z = np.maximum(att @ w["fused_o.weight"].T + cand["q_proj"], 0.0)  # (N, H')
        return z @ w["out.weight"][0] + cand["offset"]
