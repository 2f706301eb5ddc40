"""The training loop: AdamW over padded learner batches, early stopping on validation learners.

Reads top to bottom in the order it runs::

    model = ModelClass.for_table(train)                 # vocabularies + item difficulties
    encode train (cross-fitted difficulty), valid, test
    for epoch: shuffle batches -> forward -> BCE on every attempt -> AdamW step
               validation AUC -> keep the best weights, stop after `patience` epochs without gain
    restore the best weights -> test metrics -> plots -> tracker (MLflow) logs and registers

With ``refit=True`` the early-stopped run only chooses the number of epochs ``E`` (its best
validation epoch): a fresh model of the same class, hyper-parameters and seed is then built on
train+valid (vocabularies and item difficulties from train+valid, the training rows' difficulty
feature cross-fitted over train+valid learners) and trained for exactly ``E`` epochs without
validation; the test metrics are that model's. The test table is only ever predicted.

Under ``torchrun`` (see :mod:`training.ddp`) every rank runs this same function: batches are
planned identically on every rank, each rank takes every ``world_size``-th learner of each batch,
and the loss is scaled so the all-reduced gradient equals the one-process gradient of the whole
batch. Rank 0 evaluates, broadcasts the early-stopping decision, and logs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from configs import ZPDConfig
from models.base import Event, LearnerModel
from models.bkt import GraphBKT, bkt_config
from models.neural import EncodedAttempts, NeuralModel
from models.registry import MODEL_CLASSES
from training import ddp, plots
from training.interactions import concat_tables
from training.metrics import evaluate_predictions

__all__ = ["RunTracker", "TrainResult", "plan_batches", "predict_table", "train"]


class RunTracker(Protocol):
    """What the loop tells an experiment tracker (see :class:`training.tracking.MLflowTracker`)."""

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], config: Mapping[str, Any]) -> str: ...

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def finish(self, result: TrainResult, artifacts: Mapping[str, Path]) -> str | None: ...

    def fail(self, error: BaseException) -> None: ...


@dataclass
class TrainResult:
    """What a training run produced. ``metrics`` holds ``test_*`` and ``valid_*`` (best epoch).

    With refit, ``model`` is the model refitted on train+valid for ``refit_epochs`` epochs and
    ``test_*`` are its metrics; ``valid_*`` and ``history`` are the early-stopped run's, whose own
    test metrics are kept as ``early_stopped_test_*``; ``refit_history`` has the refit's
    losses and ``early_stopped_model`` is the early-stopped model.
    """

    model: LearnerModel
    model_name: str
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    seconds_per_epoch: float
    world_size: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    test_labels: np.ndarray | None = None
    test_predictions: np.ndarray | None = None
    run_id: str | None = None
    model_version: str | None = None
    refit_epochs: int | None = None
    early_stopped_model: LearnerModel | None = None
    refit_history: list[dict[str, float]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ batches
def plan_batches(lengths: np.ndarray, batch_tokens: int, max_learners: int, min_learners: int = 1) -> list[np.ndarray]:
    """Group learners of similar length: each batch has at most ``batch_tokens`` padded positions
    (learners x longest) and ``max_learners`` learners, and at least ``min_learners`` learners
    (a single learner may exceed the budget). Learners without attempts are left out.

    >>> [b.tolist() for b in plan_batches(np.array([5, 1, 2, 9]), batch_tokens=10, max_learners=8)]
    [[1, 2], [0], [3]]
    """
    order = [int(i) for i in np.argsort(lengths, kind="stable") if lengths[i] > 0]
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = int(lengths[index])  # ascending order: the newcomer is the longest
        full = (len(current) + 1) * longest > batch_tokens or len(current) >= max_learners
        if current and full and len(current) >= min_learners:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        if len(current) < min_learners and batches:
            batches[-1].extend(current)
        else:
            batches.append(current)
    return [np.array(b, dtype=np.int64) for b in batches]


def _predict_encoded(model: NeuralModel, data: EncodedAttempts, batch_tokens: int) -> np.ndarray:
    """P(correct) of every attempt of ``data`` (in its row order) from the batched forward."""
    out = np.empty(len(data.item), dtype=np.float64)
    for learners in plan_batches(data.lengths, batch_tokens, 1024):
        batch = data.batch(learners)
        out[data.rows(learners)] = model.predict_batch(batch)[batch.mask.numpy()]
    return out


def predict_table(model: LearnerModel, table: Any, batch_tokens: int = 32768) -> np.ndarray:
    """P(correct) of every attempt of an InteractionTable, each from the attempts before it.

    Neural models use the batched forward; others fold events one by one.
    """
    if isinstance(model, NeuralModel):
        return _predict_encoded(model, model.encode_table(table), batch_tokens)
    out = np.empty(table.n_attempts, dtype=np.float64)
    for seq in table.iter_learners():
        events = [
            Event(
                table.item_ids[seq.item[t]],
                tuple(
                    table.standard_ids[s]
                    for s in seq.standard_indices[seq.standard_offsets[t] : seq.standard_offsets[t + 1]]
                ),
                float(seq.correct[t]),
            )
            for t in range(len(seq))
        ]
        lo = int(table.learner_offsets[seq.index])
        out[lo : lo + len(seq)] = model.predict_sequence(events)
    return out


# ------------------------------------------------------------------------------------------ train
def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _build_model(model_name: str, table_train: Any, config: ZPDConfig, seed: int) -> LearnerModel:
    cls = MODEL_CLASSES.get(model_name)
    if cls is None:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(sorted(MODEL_CLASSES))}")
    hyper = dict(getattr(config.model, model_name, {}) or {})
    if issubclass(cls, NeuralModel):
        return cls.for_table(table_train, hyper=hyper, seed=seed)
    if cls is GraphBKT:  # no training: BKT with the configured parameters ([model.bkt]) over the data's standards
        return GraphBKT(bkt_config(list(table_train.standard_ids), **hyper))
    raise ValueError(f"model {model_name!r} cannot be trained by training.train")


def _data_info(tables: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {split: {**t.summary(), "fingerprint": t.fingerprint()} for split, t in tables.items()}


def _params(model: LearnerModel, config: ZPDConfig, epochs: int, seed: int, lr: float, world: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model.name,
        "epochs": epochs,
        "seed": seed,
        "learning_rate": lr,
        "world_size": world,
    }
    params.update(
        {
            f"training.{k}": v
            for k, v in config.training.model_dump().items()
            if k not in ("epochs", "seed", "learning_rate")
        }
    )
    if isinstance(model, NeuralModel):
        params.update({f"model.{k}": v for k, v in model.hyper.items()})
        params["n_parameters"] = sum(p.numel() for p in model.net.parameters())
        params["n_items"], params["n_standards"] = model.n_items, model.n_standards
    return params


def train(
    table_train: Any,
    table_valid: Any,
    table_test: Any,
    model_name: str,
    config: ZPDConfig | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    tracker: RunTracker | None = None,
    progress: bool = True,
    output_dir: str | Path | None = None,
    refit: bool = False,
    package: Callable[[LearnerModel], LearnerModel] | None = None,
) -> TrainResult:
    """Train ``model_name`` on ``table_train``, stop early on ``table_valid``, report on ``table_test``.

    Tables are :class:`training.interactions.InteractionTable` s with any vocabularies (ids are
    matched by name; items and standards unseen in training are scored as new ones). ``epochs``
    and ``seed`` default to ``config.training``. With a ``tracker`` (rank 0 only) the run is
    logged and the model registered; ``output_dir`` also keeps the model folder and the plots.
    ``refit`` retrains a fresh model on train+valid for the early-stopped number of epochs and
    reports its test metrics (see the module docstring); ``data`` then also describes the
    ``refit`` table (train+valid) with its fingerprint. ``package`` turns the trained model into
    the model that is saved and registered (e.g. :func:`training.packaging.package_for_graph`);
    the metrics are the trained model's.
    """
    config = config or ZPDConfig()
    tc = config.training
    epochs = tc.epochs if epochs is None else int(epochs)
    seed = tc.seed if seed is None else int(seed)
    dctx = ddp.context()
    tracker = tracker if dctx.is_main else None
    torch.set_num_threads(tc.threads)
    _seed_everything(seed)
    model = _build_model(model_name, table_train, config, seed)
    model_lr: float = getattr(model, "learning_rate", 1e-3)  # a class attribute of the neural models
    lr = float(tc.learning_rate or model_lr)
    refit = bool(refit) and isinstance(model, NeuralModel)
    table_refit = concat_tables(table_train, table_valid) if refit else None
    splits = {"train": table_train, "valid": table_valid, "test": table_test}
    if table_refit is not None:
        splits["refit"] = table_refit
    data = _data_info(splits) if (tracker or refit) else {}
    params = _params(model, config, epochs, seed, lr, dctx.world_size)
    if refit:
        params["refit"] = True
    if tracker is not None:
        tracker.start(params, {"zpd.model": model_name}, config.model_dump(mode="json") | {"data": data})
    try:
        if isinstance(model, NeuralModel):
            history, best_epoch, stopped = _fit(
                model, table_train, table_valid, config, epochs, seed, lr, dctx, tracker, progress
            )
        else:
            history, best_epoch, stopped = [], 0, False
        result = _finish(
            model, model_name, table_valid, table_test, history, best_epoch, stopped, dctx, params, data, tc
        )
        if table_refit is not None and best_epoch >= 1:
            _refit(result, table_refit, table_test, config, best_epoch, seed, lr, dctx, tracker, progress)
        if package is not None:
            result.model = package(result.model)
        if dctx.is_main and (tracker is not None or output_dir is not None):
            with tempfile.TemporaryDirectory(prefix="zpd-train-") as tmp:
                folder = Path(output_dir) if output_dir is not None else Path(tmp)
                artifacts = _write_artifacts(result, folder)
                if tracker is not None:
                    result.model_version = tracker.finish(result, artifacts)
    except BaseException as exc:
        if tracker is not None:
            tracker.fail(exc)
        raise
    return result


class _Best(TypedDict):
    """The best epoch so far of early stopping."""

    auc: float
    epoch: int
    state: dict[str, torch.Tensor]


def _fit(
    model: NeuralModel,
    table_train: Any,
    table_valid: Any | None,
    config: ZPDConfig,
    epochs: int,
    seed: int,
    lr: float,
    dctx: ddp.DistContext,
    tracker: RunTracker | None,
    progress: bool,
    prefix: str = "",
) -> tuple[list[dict[str, float]], int, bool]:
    """Train ``model`` in place. With ``table_valid``: early stopping, best weights restored.
    Without: exactly ``epochs`` epochs, last weights kept (metrics logged with ``prefix``)."""
    tc = config.training
    train_data = model.encode_table(table_train, cross_fit=True)
    valid_data = model.encode_table(table_valid) if dctx.is_main and table_valid is not None else None
    lengths = train_data.lengths
    # the same plan for any world size, so N ranks compute exactly the one-process updates
    batches = plan_batches(lengths, tc.batch_tokens, tc.max_batch_learners)
    if not batches:
        raise ValueError("the training data has no attempts")
    net = model.net
    wrapped = torch.nn.parallel.DistributedDataParallel(net) if dctx.active else net
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=tc.weight_decay)
    best: _Best = {"auc": -np.inf, "epoch": 0, "state": {k: v.clone() for k, v in net.state_dict().items()}}
    history: list[dict[str, float]] = []
    stale, stopped = 0, False
    # bars on a terminal only (tqdm's None): in a log, redrawn bars are a line of carriage returns
    bars = None if progress and dctx.is_main else True
    epoch_bar = tqdm(range(1, epochs + 1), desc=f"{model.name} epochs", disable=bars, file=sys.stderr, leave=False)
    for epoch in epoch_bar:
        t0 = time.perf_counter()
        net.train()
        loss_sum = 0.0
        tokens: float = 0  # a float once summed over ranks
        order = np.random.default_rng([seed, epoch]).permutation(len(batches))
        for b in tqdm(order, desc=f"epoch {epoch}", disable=bars, file=sys.stderr, leave=False):
            learners = batches[b]
            mine, weight = learners[dctx.rank :: dctx.world_size], 1.0
            if len(mine) == 0:  # fewer learners than ranks: join the all-reduce with a zero gradient
                mine, weight = learners[:1], 0.0
            batch = train_data.batch(mine)
            logits = wrapped(batch)
            summed = weight * F.binary_cross_entropy_with_logits(
                logits[batch.mask], batch.correct[batch.mask], reduction="sum"
            )
            # DDP averages gradients over ranks: scale so the result is the mean over the whole batch
            loss = summed * dctx.world_size / float(lengths[learners].sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
            optimizer.step()
            loss_sum += float(summed.detach())
            tokens += batch.n_tokens if weight else 0
        seconds = time.perf_counter() - t0
        loss_sum, tokens = ddp.all_reduce_sum([loss_sum, tokens])
        if table_valid is None:
            record = {"epoch": epoch, "train_loss": loss_sum / max(tokens, 1), "epoch_seconds": seconds}
            history.append(record)
            if tracker is not None:
                tracker.log_epoch(epoch, {f"{prefix}{k}": v for k, v in record.items() if k != "epoch"})
            epoch_bar.set_postfix(loss=f"{record['train_loss']:.4f}")
            continue
        if dctx.is_main:
            assert valid_data is not None  # encoded on the main rank whenever there is a valid table
            valid = evaluate_predictions(
                valid_data.correct, _predict_encoded(model, valid_data, tc.batch_tokens * 4), "valid_"
            )
        else:
            valid = {}
        valid_auc, valid_loss = ddp.broadcast_from_main([valid.get("valid_auc", 0.0), valid.get("valid_log_loss", 0.0)])
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / max(tokens, 1),
            "valid_auc": valid_auc,
            "valid_log_loss": valid_loss,
            "epoch_seconds": seconds,
        }
        history.append(record)
        if tracker is not None:
            tracker.log_epoch(epoch, {k: v for k, v in record.items() if k != "epoch"})
        epoch_bar.set_postfix(valid_auc=f"{valid_auc:.4f}", loss=f"{record['train_loss']:.4f}")
        if valid_auc > best["auc"] + tc.min_delta:
            best = {
                "auc": valid_auc,
                "epoch": epoch,
                "state": {k: v.detach().clone() for k, v in net.state_dict().items()},
            }
            stale = 0
        else:
            stale += 1
            if stale >= tc.patience:
                stopped = epoch < epochs
                break
    if table_valid is None:
        net.eval()
        return history, len(history), False
    net.load_state_dict(best["state"])
    net.eval()
    return history, int(best["epoch"]), stopped


def _refit(
    result: TrainResult,
    table_refit: Any,
    table_test: Any,
    config: ZPDConfig,
    epochs: int,
    seed: int,
    lr: float,
    dctx: ddp.DistContext,
    tracker: RunTracker | None,
    progress: bool,
) -> None:
    """Replace ``result``'s model and test metrics by a fresh model trained on ``table_refit``
    (train+valid) for exactly ``epochs`` epochs, same class, hyper-parameters and seed."""
    _seed_everything(seed)
    model = _build_model(result.model_name, table_refit, config, seed)
    assert isinstance(model, NeuralModel)  # train() refits neural models only
    history, _, _ = _fit(model, table_refit, None, config, epochs, seed, lr, dctx, tracker, progress, prefix="refit_")
    result.early_stopped_model = result.model
    result.model, result.refit_epochs, result.refit_history = model, epochs, history
    if not dctx.is_main:
        return
    early = {f"early_stopped_{k}": v for k, v in result.metrics.items() if k.startswith("test_")}
    y_test = np.asarray(table_test.correct, dtype=np.float64)
    p_test = predict_table(model, table_test, config.training.batch_tokens * 4)
    result.metrics.update(evaluate_predictions(y_test, p_test, "test_"))
    result.metrics.update(early)
    result.metrics["refit_epochs"] = float(epochs)
    result.metrics["refit_seconds_per_epoch"] = float(np.mean([h["epoch_seconds"] for h in history]))
    result.test_labels, result.test_predictions = y_test, p_test


def _finish(
    model: LearnerModel,
    model_name: str,
    table_valid: Any,
    table_test: Any,
    history: list[dict[str, float]],
    best_epoch: int,
    stopped: bool,
    dctx: ddp.DistContext,
    params: dict[str, Any],
    data: dict[str, dict[str, Any]],
    tc: Any,
) -> TrainResult:
    seconds = [h["epoch_seconds"] for h in history]
    result = TrainResult(
        model=model,
        model_name=model_name,
        metrics={},
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped,
        seconds_per_epoch=float(np.mean(seconds)) if seconds else 0.0,
        world_size=dctx.world_size,
        params=params,
        data=data,
    )
    if not dctx.is_main:
        return result
    y_test = np.asarray(table_test.correct, dtype=np.float64)
    p_test = predict_table(model, table_test, tc.batch_tokens * 4)
    result.metrics = evaluate_predictions(y_test, p_test, "test_")
    best = next((h for h in history if h["epoch"] == best_epoch), None)
    if best is not None:
        result.metrics.update(valid_auc=best["valid_auc"], valid_log_loss=best["valid_log_loss"])
    else:  # untrained model: still report validation
        result.metrics.update(
            evaluate_predictions(np.asarray(table_valid.correct), predict_table(model, table_valid), "valid_")
        )
    result.metrics["seconds_per_epoch"] = result.seconds_per_epoch
    result.test_labels, result.test_predictions = y_test, p_test
    return result


def _write_artifacts(result: TrainResult, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {"model": result.model.save(folder / "model")}
    assert result.test_labels is not None and result.test_predictions is not None
    artifacts["calibration"] = plots.calibration_plot(
        result.test_labels,
        result.test_predictions,
        folder / "calibration.png",
        f"{result.model_name}: calibration on test learners",
    )
    if result.history:
        artifacts["learning_curves"] = plots.learning_curves(
            result.history, folder / "learning_curves.png", f"{result.model_name}: learning curves"
        )
    return artifacts
