"""The ``zpd`` learner-state model: a recurrent state with question-aware deep and wide heads.

It joins what DKT and Best-LR each get right, keeping an O(1) incremental update:

* **features** of attempt ``t`` (from the learner's earlier attempts only), all ``log1p``-scaled:
  on the attempt's standards (mean over its standards) the attempts, successes, failures, current
  success and failure streaks, attempts since the standard was last practised and the length of
  the run of attempts on it just before; in total the attempts, successes, failures and streaks
  (:data:`FEATURES`);
* **recurrent state**: a GRU reads ``[c q, (1 - c) q, f]`` where ``q`` is the Rasch item embedding
  (standards' embeddings plus item difficulty times their variation vectors) and ``c`` the response;
* **deep head**: ``w . relu(W_h h_{t-1} + W_q q_t + W_f f_t + b)`` (question-aware prediction);
* **wide head**: the Best-LR terms (standard easiness, per-standard weights on the success and
  failure counts, a linear term on ``f``, item difficulty), which carry what counts and difficulty
  say directly.

``logit = deep + wide``. The serving state is the GRU state plus five per-standard vectors
(successes, failures, signed streak, 1-based index of the last attempt, run length) and the totals
(successes, failures, signed streak, attempts): ``update`` is one GRU step and a few assignments on
the event's standards, ``predict`` over N candidates is O(N * H') with the candidates' ``W_q q``
precomputed in ``encode_items``.

Per-item counts (earlier tries and successes on the very same item) are left out: they would
need a per-learner map over all items in the state, and repeated items are rare in the benchmark
data (1.4% of the attempts of ASSIST2009 fold 1 train, 1.0% of Statics2011's). A saved zpd model
or learner state of the earlier layout (4 count features; state keys ``h``, ``success``,
``failure``, ``total``) is refused with a :class:`~models.base.ModelFormatError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import ItemBatch, LearnerState, ModelFormatError
from models.neural import Attempt, NeuralModel, RaschEmbedding, SequenceBatch, rasch_numpy, sigmoid

__all__ = ["ZPDModel"]

#: the count features of an attempt, in order: 7 means over its standards, then 5 totals
FEATURES = (
    "std_attempts",
    "std_successes",
    "std_failures",
    "std_success_streak",
    "std_failure_streak",
    "std_gap",
    "std_run",
    "attempts",
    "successes",
    "failures",
    "success_streak",
    "failure_streak",
)
N_FEATURES = len(FEATURES)
#: keys of a learner state of this version (an older zpd kept only h, success, failure, total)
STATE_KEYS = ("h", "success", "failure", "streak", "last", "run", "total")


def _features(batch: SequenceBatch, pad: int) -> torch.Tensor:
    real = (batch.standards != pad).float()  # (B, T, K)
    count = real.sum(-1).clamp(min=1.0)
    per_standard = torch.stack(
        [
            batch.std_success + batch.std_failure,
            batch.std_success,
            batch.std_failure,
            batch.std_streak.clamp(min=0.0),
            (-batch.std_streak).clamp(min=0.0),
            batch.std_gap,
            batch.std_run,
        ],
        -1,
    )  # (B, T, K, 7)
    means = (torch.log1p(per_standard) * real.unsqueeze(-1)).sum(-2) / count.unsqueeze(-1)  # (B, T, 7)
    totals = torch.log1p(
        torch.stack(
            [
                batch.total_success + batch.total_failure,
                batch.total_success,
                batch.total_failure,
                batch.total_streak.clamp(min=0.0),
                (-batch.total_streak).clamp(min=0.0),
            ],
            -1,
        )
    )  # (B, T, 5)
    return torch.cat([means, totals], -1)  # (B, T, N_FEATURES)


def _standard_table(state: LearnerState, standards: np.ndarray | None = None) -> np.ndarray:
    """``log1p`` of the 7 per-standard counts (attempts, successes, failures, success streak,
    failure streak, gap, run) for ``standards`` (any shape), or for every standard (+ padding)."""
    pick = (lambda v: v) if standards is None else (lambda v: v[standards])
    success, failure = pick(state["success"]), pick(state["failure"])
    streak, last = pick(state["streak"]), pick(state["last"])
    done = state["total"][3]  # attempts so far = the index of the attempt being predicted
    gap = np.where(last > 0, done - last + 1, 0.0)
    run = np.where(last == done, pick(state["run"]), 0.0)
    return np.log1p(
        np.stack([success + failure, success, failure, np.maximum(streak, 0), np.maximum(-streak, 0), gap, run], -1)
    )


def _totals(state: LearnerState) -> np.ndarray:
    """``log1p`` of the learner's totals: attempts, successes, failures, success and failure streak."""
    t_success, t_failure, t_streak = state["total"][:3]
    return np.log1p(
        np.array([t_success + t_failure, t_success, t_failure, max(t_streak, 0), max(-t_streak, 0)], dtype=np.float32)
    )


def _with_totals(means: np.ndarray, state: LearnerState) -> np.ndarray:
    """(N, 7) per-standard means and the totals: the (N, N_FEATURES) features."""
    return np.concatenate([means, np.broadcast_to(_totals(state), (len(means), 5))], 1).astype(np.float32)


def _state_features(state: LearnerState, standards: np.ndarray, real: np.ndarray, count: np.ndarray) -> np.ndarray:
    """:func:`_features` from a serving state for N attempts on ``standards`` (N, K) padded with
    ``n_standards`` (``real`` marks the others; ``count`` = real standards, at least 1)."""
    means = (_standard_table(state, standards) * real[..., None]).sum(1) / count[:, None]  # (N, 7)
    return _with_totals(means, state)


def _check_state(state: LearnerState) -> None:
    if "last" not in state:
        raise ModelFormatError(
            f"this zpd learner state has keys {sorted(state)}, expected {list(STATE_KEYS)}: it was built by an "
            "older zpd model; rebuild it from the learner's event log"
        )


class ZPDNet(nn.Module):
    def __init__(
        self,
        n_items: int,
        n_standards: int,
        dim: int,
        hidden: int,
        out_hidden: int,
        dropout: float,
        item_residual: bool,
    ):
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
        self.counts = nn.Linear(N_FEATURES, 1, bias=False)
        self.mu_weight = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():
            for emb in (self.easy, self.win, self.fail):
                emb.weight.zero_()
            self.counts.weight.zero_()

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        q, mu = self.embed(batch.item, batch.standards, batch.difficulty)  # (B, T, E), (B, T)
        f = _features(batch, self.pad)  # (B, T, N_FEATURES)
        c = batch.correct.unsqueeze(-1)
        h, _ = self.rnn(torch.cat([q * c, q * (1 - c), f], dim=-1))  # (B, T, H)
        h_before = F.pad(h[:, :-1], (0, 0, 1, 0))  # (B, T, H): state before each attempt
        z = torch.relu(self.out_h(self.drop(h_before)) + self.out_q(q) + self.out_f(f))  # (B, T, H')
        deep = self.out(self.drop(z)).squeeze(-1)  # (B, T)
        real = (batch.standards != self.pad).float()
        wide = (
            (
                self.easy(batch.standards).squeeze(-1)
                + self.win(batch.standards).squeeze(-1) * torch.log1p(batch.std_success)
                + self.fail(batch.standards).squeeze(-1) * torch.log1p(batch.std_failure)
            )
            * real
        ).sum(-1)
        wide = wide + self.counts(f).squeeze(-1) - self.mu_weight * mu
        return deep + wide  # (B, T)


class ZPDModel(NeuralModel):
    """Recurrent state + question-aware deep head + Best-LR wide head (see the module docstring)."""

    name = "zpd"
    #: ``item_residual`` on (off for the other models): on fold 1 it raised zpd's validation AUC on
    #: ASSIST2009 (0.7841 -> 0.7858) and Statics2011 (0.8290 -> 0.8301, measured with an L2 of 1e-3
    #: on the residuals) and left ASSIST2015 level (0.7342 -> 0.7341, same); on ASSIST2009 an L2 of
    #: 1e-3 or 1e-2 on the residuals left validation AUC unchanged, so there is none
    defaults: ClassVar[Mapping[str, Any]] = {
        "dim": 64,
        "hidden": 128,
        "out_hidden": 64,
        "dropout": 0.2,
        "item_residual": True,
    }
    learning_rate: ClassVar[float] = 2e-3

    def build_net(self) -> nn.Module:
        h = self.hyper
        return ZPDNet(
            len(self.items),
            len(self.standards),
            int(h["dim"]),
            int(h["hidden"]),
            int(h["out_hidden"]),
            float(h["dropout"]),
            bool(h["item_residual"]),
        )

    def load_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        saved = arrays.get("net.out_f.weight")
        if saved is not None and np.ndim(saved) == 2 and np.shape(saved)[1] != N_FEATURES:
            raise ModelFormatError(
                f"these zpd weights use {np.shape(saved)[1]} count features per attempt (an older zpd); this "
                f"version uses {N_FEATURES} ({', '.join(FEATURES)}): retrain the model"
            )
        super().load_weights(arrays)

    def derive(self, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.n_standards
        for name in ("easy", "win", "fail"):
            w[f"{name}_vec"] = np.append(w[f"{name}.weight"][:n, 0], np.float32(0.0))  # padded with 0
        return w

    def init_state(self) -> LearnerState:
        n = self.n_standards
        state = {key: np.zeros(n + 1, dtype=np.float32) for key in STATE_KEYS[1:-1]}  # padding row stays 0
        return {
            "h": np.zeros(int(self.hyper["hidden"]), dtype=np.float32),
            **state,
            "total": np.zeros(4, dtype=np.float32),
        }  # successes, failures, signed streak, attempts

    def step(self, state: LearnerState, w: Mapping[str, np.ndarray], attempt: Attempt) -> LearnerState:
        _check_state(state)
        q, _ = rasch_numpy(w, "embed", np.array(attempt.item), attempt.standards[None, :], np.array(attempt.difficulty))
        q = q.reshape(-1)
        stds = attempt.standards
        feats = _state_features(
            state,
            stds[None, :],
            np.ones((1, len(stds)), dtype=np.float32),
            np.array([max(len(stds), 1)], dtype=np.float32),
        )[0]
        x = np.concatenate([q * attempt.correct, q * (1.0 - attempt.correct), feats]).astype(np.float32)
        h = state["h"]
        gi = w["rnn.weight_ih_l0"] @ x + w["rnn.bias_ih_l0"]
        gh = w["rnn.weight_hh_l0"] @ h + w["rnn.bias_hh_l0"]
        ir, iz, in_ = np.split(gi, 3)  # GRU gate order r, z, n
        hr, hz, hn = np.split(gh, 3)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        new = {key: state[key].copy() for key in STATE_KEYS[1:]}
        c, win = attempt.correct, attempt.correct >= 0.5
        done = new["total"][3]
        new["success"][stds] += c
        new["failure"][stds] += 1.0 - c
        streak = new["streak"][stds]
        new["streak"][stds] = np.maximum(streak, 0) + 1 if win else np.minimum(streak, 0) - 1
        new["run"][stds] = np.where(new["last"][stds] == done, new["run"][stds] + 1, 1)
        new["last"][stds] = done + 1
        t_streak = new["total"][2]
        new["total"] += np.array([c, 1.0 - c, 0.0, 1.0], dtype=np.float32)
        new["total"][2] = max(t_streak, 0) + 1 if win else min(t_streak, 0) - 1
        return {"h": ((1 - z) * n + z * h).astype(np.float32), **new}

    def prepare_candidates(self, w: Mapping[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        q, mu = rasch_numpy(w, "embed", cand["item"], cand["standards"], cand["difficulty"])  # (N, E), (N,)
        cand["q_proj"] = (q @ w["out_q.weight"].T).astype(np.float32)  # (N, H')
        cand["offset"] = (w["out.bias"][0] - w["mu_weight"] * mu).astype(np.float32)  # (N,)
        cand["real"] = (cand["standards"] != self.n_standards).astype(np.float32)  # (N, K)
        cand["count"] = np.maximum(cand["real"].sum(1), 1.0).astype(np.float32)  # (N,)
        # the (candidate, standard) pairs without padding: items span 1 to 17 standards, so
        # per-standard terms are summed over these pairs rather than over the padded (N, K) grid
        rows, cols = np.nonzero(cand["standards"] != self.n_standards)
        cand["pair_row"], cand["pair_std"] = rows.astype(np.int64), cand["standards"][rows, cols]
        return cand

    def take(self, items: ItemBatch, positions: np.ndarray) -> ItemBatch:
        per_item = {k: v for k, v in items.arrays.items() if k not in ("pair_row", "pair_std")}
        part = super().take(ItemBatch(items.model_id, items.item_ids, per_item), positions)
        arrays = dict(part.arrays)
        rows, cols = np.nonzero(arrays["standards"] != self.n_standards)
        arrays["pair_row"], arrays["pair_std"] = rows.astype(np.int64), arrays["standards"][rows, cols]
        return ItemBatch(part.model_id, part.item_ids, arrays)

    def score(self, state: LearnerState, w: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]) -> np.ndarray:
        _check_state(state)
        n, rows, stds = len(cand["offset"]), cand["pair_row"], cand["pair_std"]
        table = _standard_table(state)  # (S + 1, 7): once per state, then summed per candidate
        width = table.shape[1]
        sums = np.bincount(
            (rows[:, None] * width + np.arange(width)).ravel(), weights=table[stds].ravel(), minlength=n * width
        ).reshape(n, width)
        feats = _with_totals(sums / cand["count"][:, None], state)  # (N, N_FEATURES)
        a = w["out_h.weight"] @ state["h"] + w["out_h.bias"]  # (H',)
        z = np.maximum(cand["q_proj"] + a + feats @ w["out_f.weight"].T, 0.0)  # (N, H')
        deep = z @ w["out.weight"][0]
        # wide: per standard easy + win * log1p(successes) + fail * log1p(failures), summed per candidate
        per_standard = w["easy_vec"] + w["win_vec"] * table[:, 1] + w["fail_vec"] * table[:, 2]
        wide = np.bincount(rows, weights=per_standard[stds], minlength=n) + feats @ w["counts.weight"][0]
        return deep + wide + cand["offset"]  # (N,)
