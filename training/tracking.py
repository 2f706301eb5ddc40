"""MLflow tracking and model registry for training runs, with our own model format (no pickle).

Every run logs its parameters, per-epoch metrics, final metrics, the config, the data
fingerprints (tags ``data.<split>.fingerprint``), the plots, and the saved model folder
(``config.json`` + ``weights.npz``) as the run's ``model/`` artifacts. That folder is registered as
a version of the registered model (``zpd-learner`` by default), so ``models:/zpd-learner/3`` and
``models:/zpd-learner@champion`` resolve to it. Loading goes through
:func:`models.registry.load_model` (``np.load(allow_pickle=False)``): never ``mlflow.pytorch``.

The default store is a local SQLite file (``sqlite:///var/mlflow.db``); its artifacts go to a
folder ``mlartifacts`` next to the database file. MLflow 3: versions are promoted with aliases,
not stages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from models.base import LearnerModel
from models.registry import load_model

if TYPE_CHECKING:  # mlflow is imported lazily: it takes a second and most commands never need it
    from mlflow import MlflowClient

    from training.train import TrainResult

__all__ = [
    "MLflowTracker",
    "ModelRegistryError",
    "list_versions",
    "load_registered_model",
    "promote",
    "resolve_model_uri",
    "tracking_client",
]

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w\-]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run>[0-9a-f]+)/(?P<path>.+)$")


class ModelRegistryError(ValueError):
    """A registry operation failed: unknown model, version or alias, or a malformed model URI."""


# ------------------------------------------------------------------------------------------ client
def _sqlite_file(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


def tracking_client(tracking_uri: str) -> MlflowClient:
    """A client whose tracking and registry stores are ``tracking_uri`` (a SQLite file's folder
    is created when missing)."""
    from mlflow import MlflowClient

    db = _sqlite_file(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    db = _sqlite_file(tracking_uri)
    location = (db.resolve().parent / "mlartifacts").as_uri() if db is not None else None
    return client.create_experiment(name, artifact_location=location)


# ------------------------------------------------------------------------------------------ tracker
class MLflowTracker:
    """Logs one training run (see :class:`training.train.RunTracker`) and registers its model.

    >>> tracker = MLflowTracker("sqlite:///var/mlflow.db", "zpd-learner", "zpd-learner")  # doctest: +SKIP
    >>> result = train(train_table, valid_table, test_table, "dkt", config, tracker=tracker)  # doctest: +SKIP
    >>> result.run_id, result.model_version  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        registered_model: str,
        tags: Mapping[str, str] | None = None,
        register: bool = True,
    ):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.registered_model = registered_model
        self.extra_tags = dict(tags or {})
        self.register = register
        self.client = tracking_client(tracking_uri)
        self.run_id: str | None = None

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], config: Mapping[str, Any]) -> str:
        from mlflow.entities import Param, RunTag

        experiment_id = _experiment_id(self.client, self.experiment, self.tracking_uri)
        model = str(params.get("model", "model"))
        run = self.client.create_run(experiment_id, run_name=f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.run_id = run.info.run_id
        all_tags = {**self.extra_tags, **tags}
        for split, info in config.get("data", {}).items():
            all_tags[f"data.{split}.fingerprint"] = str(info.get("fingerprint", ""))
        flat = dict(params)
        for split, info in config.get("data", {}).items():
            flat.update({f"data.{split}.{k}": v for k, v in info.items()})
        items = [Param(k, str(v)[:6000]) for k, v in sorted(flat.items())]
        for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in sorted(all_tags.items())])
        self.client.log_dict(self.run_id, dict(config), "config.json")
        return self.run_id

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self._run(), metrics=[Metric(k, float(v), now, epoch) for k, v in metrics.items()])

    def finish(self, result: TrainResult, artifacts: Mapping[str, Path]) -> str | None:
        from mlflow.entities import Metric

        run_id = self._run()
        now = int(time.time() * 1000)
        # per-epoch names (valid_auc...) keep their epoch history: the best epoch's values get their own names
        final = {(f"best_{k}" if k.startswith("valid_") else k): v for k, v in result.metrics.items()}
        final.update(best_epoch=result.best_epoch, epochs_run=len(result.history))
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in final.items()])
        for name, path in artifacts.items():
            if name == "model":
                self.client.log_artifacts(run_id, str(path), "model")
            else:
                self.client.log_artifact(run_id, str(path))
        version = None
        if self.register:
            version = self._register(run_id, result)
            self.client.set_tag(run_id, "zpd.model_version", version)
        self.client.set_terminated(run_id, "FINISHED")
        result.run_id, result.model_version = run_id, version
        return version

    def fail(self, error: BaseException) -> None:
        if self.run_id is not None:
            self.client.set_tag(self.run_id, "zpd.error", f"{type(error).__name__}: {error}"[:5000])
            self.client.set_terminated(self.run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("MLflowTracker.start() was not called")
        return self.run_id

    def _register(self, run_id: str, result: TrainResult) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.registered_model)
        except MlflowException:
            self.client.create_registered_model(
                self.registered_model, description="zpd-engine learner-state models (config.json + weights.npz)"
            )
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        tags = {"zpd.model": result.model_name, "zpd.format": "config.json+weights.npz"}
        tags.update({k: f"{v:.6g}" for k, v in result.metrics.items() if k.startswith("test_")})
        version = self.client.create_model_version(
            self.registered_model,
            source,
            run_id=run_id,
            tags=tags,
            description=f"{result.model_name}, test AUC {result.metrics.get('test_auc', float('nan')):.4f}",
        )
        return str(version.version)


# ------------------------------------------------------------------------------------------ registry
def list_versions(tracking_uri: str, registered_model: str = "zpd-learner") -> list[dict[str, Any]]:
    """Every version of ``registered_model``, oldest first, with its aliases, run and test metrics."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(tracking_uri)
    try:
        aliases = client.get_registered_model(registered_model).aliases or {}
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name='{registered_model}'")
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version)):
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(by_version.get(str(mv.version), [])),
                "model": mv.tags.get("zpd.model", ""),
                "test_auc": float(mv.tags["test_auc"]) if "test_auc" in mv.tags else None,
                "run_id": mv.run_id,
                "source": mv.source,
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mv.creation_timestamp / 1000)),
                "status": mv.status,
            }
        )
    return rows


def promote(
    version: str | int,
    alias: str = "champion",
    tracking_uri: str = "sqlite:///var/mlflow.db",
    registered_model: str = "zpd-learner",
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (moving it from any previous version)."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(tracking_uri)
    try:
        client.get_model_version(registered_model, str(version))
    except MlflowException:
        known = [v["version"] for v in list_versions(tracking_uri, registered_model)]
        raise ModelRegistryError(
            f"{registered_model} has no version {version} (versions: {', '.join(known) or 'none'})"
        ) from None
    try:
        client.set_registered_model_alias(registered_model, alias, str(version))
    except MlflowException as exc:
        raise ModelRegistryError(f"cannot set alias {alias!r}: {exc.message}") from None
    return {"registered_model": registered_model, "alias": alias, "version": str(version)}


def resolve_model_uri(uri: str, tracking_uri: str, dst: str | Path | None = None) -> Path:
    """The local folder (config.json + weights.npz) of a model URI.

    Accepts ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``runs:/<run_id>/<path>``,
    a ``file://`` URI or a local folder. Remote artifacts are downloaded into ``dst`` (a temporary
    folder by default); local ones are used in place.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    try:
        match = _MODELS_URI.match(uri)
        if match:
            client = tracking_client(tracking_uri)
            name = match["name"]
            mv = (
                client.get_model_version(name, match["version"])
                if match["version"]
                else client.get_model_version_by_alias(name, match["alias"])
            )
            local = download_artifacts(
                artifact_uri=mv.source, dst_path=None if dst is None else str(dst), tracking_uri=tracking_uri
            )
        elif _RUNS_URI.match(uri):
            run = _RUNS_URI.match(uri)
            assert run is not None
            local = download_artifacts(
                run_id=run["run"],
                artifact_path=run["path"],
                dst_path=None if dst is None else str(dst),
                tracking_uri=tracking_uri,
            )
        elif uri.startswith("file://"):
            local = urlparse(uri).path
        elif "://" in uri or uri.startswith(("models:", "runs:")):
            raise ModelRegistryError(
                f"unsupported model URI {uri!r}: use models:/NAME/VERSION, models:/NAME@ALIAS, "
                "runs:/RUN_ID/PATH or a local folder"
            )
        else:
            local = uri
    except MlflowException as exc:
        raise ModelRegistryError(f"cannot resolve {uri}: {exc.message}") from None
    folder = Path(local)
    if not (folder / "config.json").is_file():
        raise ModelRegistryError(f"{uri} resolved to {folder}, which holds no config.json (not a zpd model folder)")
    return folder


def load_registered_model(uri: str, tracking_uri: str) -> LearnerModel:
    """:func:`resolve_model_uri` + :func:`models.registry.load_model` (no pickle)."""
    return load_model(resolve_model_uri(uri, tracking_uri))
