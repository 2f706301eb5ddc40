"""MLflow tracking and model registry for training runs; registered versions are MLflow models.

Every run logs its parameters, per-epoch metrics, the config (``config.json``), its source (the
``mlflow.source.*`` tags, with the git commit when the code runs from a git checkout), its data
(one MLflow dataset per split, logged as a run input with the split as context, whose digest is the
table's fingerprint; the full fingerprints are also the tags ``data.<split>.fingerprint``), the
plots, and one logged model. The logged model is an MLflow ``pyfunc`` model (see
:mod:`training.pyfunc`) around our own model folder (``config.json`` + ``weights.npz``)::

    MLmodel                       flavor python_function, signature, run and model ids
    pyfunc_model.py               the code that makes the model at load (nothing is pickled)
    code/                         the project's packages that code runs
    artifacts/zpd_model/          config.json + weights.npz, as written by LearnerModel.save
    input_example.json            an event table; serving_input_example.json for /invocations
    requirements.txt, python_env.yaml, conda.yaml

The final metrics are linked to the logged model (and the test and validation metrics to their
dataset). The logged model is registered as a new version of the registered model
(``zpd-learner`` by default), so ``models:/zpd-learner/3`` and ``models:/zpd-learner@champion``
load with ``mlflow.pyfunc.load_model`` and serve with ``mlflow models serve``. Our own loading path
(:func:`resolve_model_uri`, :func:`load_registered_model`) finds ``artifacts/zpd_model`` inside it
(and still reads versions registered as a bare model folder) and goes through
:func:`models.registry.load_model` (``np.load(allow_pickle=False)``): it never unpickles.

The default store is a local SQLite file in the data folder (``MLFLOW_TRACKING_URI`` overrides it); its artifacts go to a
folder ``mlartifacts`` next to the database file. MLflow 3: versions are promoted with aliases,
not stages.
"""

from __future__ import annotations

import getpass
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from models.base import LearnerModel
from models.registry import load_model

if TYPE_CHECKING:  # mlflow is imported lazily: it takes a second and most commands never need it
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModel

    from training.train import TrainResult

__all__ = [
    "MLflowTracker",
    "ModelRegistryError",
    "list_versions",
    "load_registered_model",
    "model_folder",
    "promote",
    "require_version",
    "resolve_model_uri",
    "source_tags",
    "split_datasets",
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


# ------------------------------------------------------------------------------------------ source
def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hangs
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_tags(code: Path | None = None) -> dict[str, str]:
    """MLflow's standard source tags of this run: user, entry point, and the git commit when the
    training code (``code``, this package by default) is a file tracked in a git checkout.

    ``zpd.source.git.dirty`` is ``true`` when tracked files differ from that commit.
    """
    from mlflow.entities import SourceType
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    tags = {
        MLFLOW_SOURCE_NAME: sys.argv[0] if sys.argv and sys.argv[0] else "python",
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL),
    }
    try:
        tags[MLFLOW_USER] = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        pass
    module = code or Path(__file__)
    # the file must be tracked: a package installed into a venv inside some other checkout is not
    if _git(module.parent, "ls-files", "--error-unmatch", "--", module.name) is None:
        return tags
    commit = _git(module.parent, "rev-parse", "HEAD")
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
        changes = _git(module.parent, "status", "--porcelain", "--untracked-files=no")
        tags["zpd.source.git.dirty"] = "true" if changes else "false"
    return tags


# ------------------------------------------------------------------------------------------ datasets
#: MLflow stores at most 36 characters of a dataset digest; the full fingerprint is a run tag
_DIGEST_CHARS = 16


def split_datasets(data: Mapping[str, Mapping[str, Any]], path: str | None) -> dict[str, Any]:
    """One ``mlflow.data`` dataset per split (train, valid, test, refit) of a run's data.

    ``data`` is what :func:`training.train.train` passes as ``config["data"]``: each split's
    summary (logged as the run's ``data.<split>.*`` params) and fingerprint. The digest is the
    fingerprint's first 16 characters; the source is the data file or folder ``path`` (the run's
    ``data.path`` tag), or the code when the tables were built in memory. The name is the file or
    folder name, the same for every split: the run input's context tells the splits apart.
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    source: DatasetSource
    if path:
        with warnings.catch_warnings():  # MLflow registers its local source for two URI schemes and says so
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            source = resolve_dataset_source(str(Path(path).resolve()))
        name = Path(path).name
    else:
        source, name = CodeDatasetSource({"mlflow.source.name": sys.argv[0] if sys.argv else "python"}), "interactions"
    # MetaDataset leaves the abstract `profile` to subclasses; nothing reads it (the summary is in the params)
    return {
        split: MetaDataset(source, name=name, digest=str(info.get("fingerprint", ""))[:_DIGEST_CHARS] or None)  # type: ignore[abstract]
        for split, info in data.items()
    }


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
        self.datasets: dict[str, Any] = {}  # split -> mlflow.data dataset, set by start()

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], config: Mapping[str, Any]) -> str:
        from mlflow.entities import DatasetInput, InputTag, Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        experiment_id = _experiment_id(self.client, self.experiment, self.tracking_uri)
        model = str(params.get("model", "model"))
        run = self.client.create_run(experiment_id, run_name=f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.run_id = run.info.run_id
        data = config.get("data", {})
        all_tags = {**source_tags(), **self.extra_tags, **tags}
        for split, info in data.items():
            all_tags[f"data.{split}.fingerprint"] = str(info.get("fingerprint", ""))
        flat = dict(params)
        for split, info in data.items():
            flat.update({f"data.{split}.{k}": v for k, v in info.items()})
        items = [Param(k, str(v)[:6000]) for k, v in sorted(flat.items())]
        for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in sorted(all_tags.items())])
        self.client.log_dict(self.run_id, dict(config), "config.json")
        self.datasets = split_datasets(data, all_tags.get("data.path"))
        inputs = [
            DatasetInput(ds._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)])
            for split, ds in self.datasets.items()
        ]
        if inputs:
            self.client.log_inputs(self.run_id, datasets=inputs)
        return self.run_id

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self._run(), metrics=[Metric(k, float(v), now, epoch) for k, v in metrics.items()])

    def finish(self, result: TrainResult, artifacts: Mapping[str, Path]) -> str | None:
        """Log the final metrics and the plots, log the model folder ``artifacts["model"]`` as an
        MLflow model and register it; returns the new version (None without registration)."""
        run_id = self._run()
        for name, path in artifacts.items():
            if name != "model":
                self.client.log_artifact(run_id, str(path))
        logged = self._log_model(run_id, result, artifacts["model"]) if "model" in artifacts else None
        self._log_final_metrics(run_id, result, None if logged is None else logged.model_id)
        version = None
        if self.register and logged is not None:
            version = self._register(run_id, result, logged)
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

    def _log_model(self, run_id: str, result: TrainResult, folder: Path) -> LoggedModel:
        """The run's logged model ``model``: an MLflow pyfunc model around ``folder``."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        from models.base import FORMAT_VERSION
        from training.pyfunc import save_pyfunc_model

        run = self.client.get_run(run_id)
        logged = self.client.create_logged_model(
            run.info.experiment_id,
            name="model",
            source_run_id=run_id,
            params=dict(run.data.params),
            tags={"zpd.model": result.model_name},
            model_type="learner-state",
        )
        try:
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            ids = Model(
                artifact_path=logged.artifact_location,
                run_id=run_id,
                model_id=logged.model_id,
                model_uuid=logged.model_id,
            )
            with tempfile.TemporaryDirectory(prefix="zpd-mlflow-model-") as tmp:
                path = save_pyfunc_model(
                    result.model,
                    folder,
                    Path(tmp) / "model",
                    mlflow_model=ids,
                    metadata={"zpd_model": result.model_name, "zpd_format_version": FORMAT_VERSION},
                )
                self.client.log_model_artifacts(logged.model_id, str(path))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        return self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)

    def _log_final_metrics(self, run_id: str, result: TrainResult, model_id: str | None) -> None:
        """The run's final metrics, also on the logged model; test and validation metrics name
        the dataset they were measured on."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        # per-epoch names (valid_auc...) keep their epoch history: the best epoch's values get their own names
        final = {(f"best_{k}" if k.startswith("valid_") else k): v for k, v in result.metrics.items()}
        final.update(best_epoch=result.best_epoch, epochs_run=len(result.history))
        metrics = []
        for key, value in final.items():
            split = "test" if "test_" in key else "valid" if "valid_" in key else None
            ds = self.datasets.get(split) if split else None
            name, digest = (ds.name, ds.digest) if ds is not None else (None, None)
            metrics.append(Metric(key, float(value), now, 0, model_id, name, digest))
        self.client.log_batch(run_id, metrics=metrics)

    def _register(self, run_id: str, result: TrainResult, logged: LoggedModel) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.registered_model)
        except MlflowException:
            self.client.create_registered_model(
                self.registered_model,
                description="zpd-engine learner-state models: MLflow pyfunc models predicting P(correct) "
                "per event, around our own model folder (artifacts/zpd_model: config.json + weights.npz)",
            )
        tags = {"zpd.model": result.model_name, "zpd.format": "mlflow-pyfunc+config.json+weights.npz"}
        tags.update({k: f"{v:.6g}" for k, v in result.metrics.items() if k.startswith("test_")})
        # the logged model's own location, not models:/<id>: the registry store would resolve
        # that through the default tracking URI, not this tracker's
        version = self.client.create_model_version(
            self.registered_model,
            logged.artifact_location,
            run_id=run_id,
            tags=tags,
            description=f"{result.model_name}, test AUC {result.metrics.get('test_auc', float('nan')):.4f}",
            model_id=logged.model_id,
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


def require_version(version: str | int, tracking_uri: str, registered_model: str = "zpd-learner") -> None:
    """Raise :class:`ModelRegistryError` naming the versions there are if ``version`` is not one."""
    from mlflow.exceptions import MlflowException

    try:
        tracking_client(tracking_uri).get_model_version(registered_model, str(version))
    except MlflowException:
        known = [v["version"] for v in list_versions(tracking_uri, registered_model)]
        raise ModelRegistryError(
            f"{registered_model} has no version {version} (versions: {', '.join(known) or 'none'})"
        ) from None


def promote(
    version: str | int,
    alias: str = "champion",
    tracking_uri: str | None = None,
    registered_model: str = "zpd-learner",
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (moving it from any previous version); the tracking store
    is the configured one unless given."""
    from mlflow.exceptions import MlflowException

    if tracking_uri is None:
        from configs import load_config

        tracking_uri = load_config().mlflow.tracking_uri

    client = tracking_client(tracking_uri)
    require_version(version, tracking_uri, registered_model)
    try:
        client.set_registered_model_alias(registered_model, alias, str(version))
    except MlflowException as exc:
        raise ModelRegistryError(f"cannot set alias {alias!r}: {exc.message}") from None
    return {"registered_model": registered_model, "alias": alias, "version": str(version)}


def model_folder(local: Path) -> Path | None:
    """Our model folder (config.json + weights.npz) in ``local``: ``local`` itself (a version
    registered as a bare folder), or the ``zpd_model`` artifact of the MLflow model there."""
    if (local / "config.json").is_file():
        return local
    if not (local / "MLmodel").is_file():
        return None
    from mlflow.models import Model
    from mlflow.pyfunc import FLAVOR_NAME

    from training.pyfunc import ARTIFACT

    flavor = Model.load(str(local / "MLmodel")).flavors.get(FLAVOR_NAME, {})
    entry = (flavor.get("artifacts") or {}).get(ARTIFACT)
    if not entry:
        return None
    folder = local / entry["path"]
    inside = folder.resolve().is_relative_to(local.resolve())  # the MLmodel names a folder of this model only
    return folder if inside and (folder / "config.json").is_file() else None


def _logged_model_location(client: MlflowClient, run_id: str, path: str) -> str | None:
    """The artifact URI of ``path`` in the run's logged model named by its first part, if any.

    MLflow resolves ``runs:/RUN/NAME`` to a logged model through the process-wide tracking URI,
    which need not be ``client``'s: this looks it up through ``client``.
    """
    name, _, rest = path.strip("/").partition("/")
    outputs = client.get_run(run_id).outputs
    for output in outputs.model_outputs if outputs is not None else []:
        logged = client.get_logged_model(output.model_id)
        if logged.name == name:
            return logged.artifact_location.rstrip("/") + (f"/{rest}" if rest else "")
    return None


def resolve_model_uri(uri: str, tracking_uri: str, dst: str | Path | None = None) -> Path:
    """The local folder (config.json + weights.npz) of a model URI.

    Accepts ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``runs:/<run_id>/<path>``,
    a ``file://`` URI or a local folder, each naming an MLflow model made by
    :class:`MLflowTracker` or a bare model folder. Remote artifacts are downloaded into ``dst``
    (a temporary folder by default); local ones are used in place.
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
            location = _logged_model_location(tracking_client(tracking_uri), run["run"], run["path"])
            if location is not None:
                local = download_artifacts(
                    artifact_uri=location, dst_path=None if dst is None else str(dst), tracking_uri=tracking_uri
                )
            else:  # a folder among the run's own artifacts (how models were logged before)
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
    folder = model_folder(Path(local))
    if folder is None:
        raise ModelRegistryError(
            f"{uri} resolved to {local}, which holds no config.json (not a zpd model folder) "
            "and no MLflow model with a zpd_model artifact"
        )
    return folder


def load_registered_model(uri: str, tracking_uri: str) -> LearnerModel:
    """:func:`resolve_model_uri` + :func:`models.registry.load_model` (no pickle)."""
    return load_model(resolve_model_uri(uri, tracking_uri))
