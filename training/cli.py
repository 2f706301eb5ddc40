"""``zpd train`` and ``zpd models``: train a learner-state model, manage the model registry.

Two typer apps, mounted by the ``zpd`` command (``zpd/cli.py``)::

    app.add_typer(train_app)                   # adds the command `zpd train`
    app.add_typer(models_app, name="models")   # adds `zpd models list|promote`

The module also runs on its own, which is how torchrun starts it::

    python -m training.cli train --data PATH --format akt --fold 1 --model dkt --json
    torchrun --nproc-per-node 2 -m training.cli train --data PATH --format akt --fold 1 --model dkt

Heavy imports (torch, mlflow) happen inside the commands so ``zpd --help`` stays fast. Errors in
user input print one line ``error: ...`` on stderr and exit with status 1.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, get_args

import typer

from configs import ConfigError, ZPDConfig, load_config
from training.loaders import Format  # typer reads the annotation at run time

__all__ = ["FORMATS", "load_splits", "models_app", "train_app"]

FORMATS: tuple[str, ...] = get_args(Format)
#: the models `zpd train --model` trains (every model of models.registry but the hybrid, which is
#: what training packages them into; a test keeps the two lists equal)
Trainable = Literal["zpd", "dkt", "akt", "logistic", "bkt"]
#: learner splits of a single file depend on this seed only, never on the training seed
SPLIT_SEED = 0
#: learner folds of a single file when --fold K is given (fold K is the test set)
N_FOLDS = 5


def _is_format(fmt: str) -> TypeGuard[Format]:
    return fmt in FORMATS


train_app = typer.Typer(help="Train learner-state models.", add_completion=False)
models_app = typer.Typer(
    help="The model registry (MLflow): list versions, promote one.", no_args_is_help=True, add_completion=False
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML file merged over configs/default.toml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
RegisteredOpt = Annotated[
    str | None,
    typer.Option(
        "--registered-model",
        help="The registered model (default: the config's mlflow.registered_model, zpd-learner); a tenant's own "
        "model goes under the name mlflow.tenant_registered_model gives it (zpd-learner-TENANT).",
    ),
]


def _registered(cfg: ZPDConfig, name: str | None) -> ZPDConfig:
    """``cfg`` with ``name`` as its registered model (unchanged without one)."""
    if name is None:
        return cfg
    name = name.strip()
    if not name or "/" in name or "@" in name:
        raise ValueError(f"--registered-model: expected a registered model's name, without '/' or '@', got {name!r}")
    return cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={"registered_model": name})})


def _fail(message: Any) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _config(ctx: typer.Context, path: Path | None) -> ZPDConfig:
    if path is not None:
        return load_config(path)
    parent = ctx.find_object(ZPDConfig) if ctx is not None else None
    return parent if isinstance(parent, ZPDConfig) else load_config()


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------------------ data
def _csv_columns(spec: str | None) -> Any:
    from engine.textfiles import read_text
    from training.loaders import CsvColumns

    if spec is None or spec == "datashop":
        return "datashop"
    path = Path(spec)
    try:
        fields = json.loads(read_text(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: column mapping file not found (or pass --columns datashop)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    try:
        return CsvColumns(**fields)
    except TypeError as exc:
        raise ValueError(
            f"{path}: not a column mapping ({exc}); keys: learner, item, correct or score, standards, ..."
        ) from None


def _split(table: Any, fraction: float) -> tuple[Any, Any]:
    keep, held_out = table.split_learners(fraction, seed=SPLIT_SEED)
    return table.subset(keep), table.subset(held_out)


def load_splits(
    data: Path,
    fmt: str,
    config: ZPDConfig,
    fold: int | None = None,
    columns: str | None = None,
    merge: str = "auto",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, valid and test tables of a data set, and the load reports.

    * ``akt`` folder with ``--fold K``: the fold's own train/valid/test files (valid split off the
      train learners when the folder has no valid file);
    * ``dedup`` folder: ``preprocessed_data_train.csv`` and ``..._test.csv``, valid split off train;
    * any single file (or a folder without --fold): learners split deterministically
      (seed ``SPLIT_SEED``): with ``--fold K`` fold K of 5 learner folds is the test set, else
      ``training.test_fraction`` of the learners; ``training.valid_fraction`` of the rest is valid.

    ``merge="off"`` loads every row as an attempt (``collapse=False``); ``"auto"`` keeps each
    loader's own rule (AKT: multi-skill expansions only).
    """
    from training.loaders import akt_fold_paths, load_interactions

    if not _is_format(fmt):
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such file or folder")
    if fold is not None and fold < 1:
        raise ValueError(f"--fold must be 1 or more, got {fold}")
    tc = config.training
    if merge not in ("auto", "off"):
        raise ValueError(f"--merge must be auto or off, got {merge!r}")
    options: dict[str, Any] = {"columns": _csv_columns(columns)} if fmt == "csv" else {}
    if fmt == "caliper":  # read as the server reads them ([caliper] in the configuration)
        options.update(actions=config.caliper.actions, learner_identifier=config.caliper.learner_identifier)
    if merge == "off":
        options["collapse"] = False
    reports: dict[str, Any] = {}

    def load(path: Any, split: str) -> Any:
        table, report = load_interactions(path, fmt, **options)
        reports[split] = report.to_dict()
        return table

    tables: dict[str, Any] = {}
    if fmt == "akt" and data.is_dir():
        if fold is None:
            raise ValueError(f"{data} is a folder of AKT folds: pass --fold K")
        paths = akt_fold_paths(data, fold)
        tables["train"] = load(paths.train, "train")
        tables["test"] = load(paths.test, "test")
        if paths.valid is not None:
            tables["valid"] = load(paths.valid, "valid")
        else:
            tables["train"], tables["valid"] = _split(tables["train"], tc.valid_fraction)
    elif fmt == "dedup" and data.is_dir() and fold is None:
        train_files = sorted(data.glob("*train*.csv"))
        test_files = sorted(data.glob("*test*.csv"))
        if not train_files or not test_files:
            raise FileNotFoundError(f"{data}: expected preprocessed_data_train.csv and preprocessed_data_test.csv")
        tables["train"], tables["valid"] = _split(load(train_files, "train"), tc.valid_fraction)
        tables["test"] = load(test_files, "test")
    else:
        if data.is_dir() and fmt in ("akt", "dedup"):
            raise ValueError(f"{data} is a folder: pass a file, or --fold K for an AKT fold folder")
        table = load(data, "all")
        if fold is not None:
            folds = table.learner_folds(N_FOLDS, seed=SPLIT_SEED)
            if fold > N_FOLDS:
                raise ValueError(f"--fold must be between 1 and {N_FOLDS} for a single file, got {fold}")
            rest = sorted(set(range(table.n_learners)) - set(folds[fold - 1].tolist()))
            tables["test"], table = table.subset(folds[fold - 1]), table.subset(rest)
        else:
            table, tables["test"] = _split(table, tc.test_fraction)
        tables["train"], tables["valid"] = _split(table, tc.valid_fraction)
    for split, table in tables.items():
        if table.n_attempts == 0:
            learners = sum(t.n_learners for t in tables.values())
            raise ValueError(
                f"{data}: the {split} split has no attempts: {learners} learner(s) with answers in all, too few to"
                f" split by learner (test {tc.test_fraction:.0%}, validation {tc.valid_fraction:.0%} of the rest)"
            )
    return {k: tables[k] for k in ("train", "valid", "test")}, reports


# ------------------------------------------------------------------------------------------ train
@train_app.command("train")
def train_command(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option("--data", help="Data file or folder (an AKT fold folder needs --fold).")
    ] = None,
    fmt: Annotated[Format | None, typer.Option("--format", help="How the data is laid out.")] = None,
    from_store: Annotated[
        str | None,
        typer.Option(
            "--from-store",
            help="Train on the answers a server stored (sqlite:///PATH or redis://...; with --tenant), "
            "items and standards as served.",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant whose answers --from-store reads.")] = None,
    model: Annotated[
        Trainable,
        typer.Option(
            "--model", help="The learner-state model: zpd (ours, the bundled model's kind), dkt, akt, logistic, bkt."
        ),
    ] = "zpd",
    config: ConfigOpt = None,
    fold: Annotated[
        int | None, typer.Option("--fold", help="Fold K: the AKT fold files, or learner fold K of 5.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum epochs (default: training.epochs).")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of weights and batch order (default: training.seed).")
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="csv only: 'datashop' or a JSON file of CsvColumns fields.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Also write the model folder and plots here.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")] = True,
    merge: Annotated[
        Literal["auto", "off"],
        typer.Option(
            "--merge",
            help="auto: merge only rows that are one answer (akt: a multi-skill problem's rows with one "
            "response; csv, dedup, xapi, caliper: consecutive rows of one item); off: every row is an attempt.",
        ),
    ] = "auto",
    alignment: Annotated[
        Path | None,
        typer.Option(
            "--alignment",
            help="Skill -> standard alignment CSV (the format of data/alignments): train on the graph's standards.",
        ),
    ] = None,
    min_confidence: Annotated[
        Literal["low", "medium", "high"], typer.Option("--min-confidence", help="Lowest alignment confidence used.")
    ] = "low",
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="After early stopping picks the best epoch E on valid, train a fresh model on train+valid "
            "for E epochs and register and test that one.",
        ),
    ] = False,
    registered_model: RegisteredOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model, track the run in MLflow and register it (`zpd-learner` by default), packaged as
    the bundled model is: the trained part for the standards the data covers, graph BKT for every
    other standard of the configured graph. A log over its own skill ids needs --alignment."""
    from engine.textfiles import check_output_folder
    from training.load_report import DataError, LoadReport

    exported = tempfile.TemporaryDirectory(prefix="zpd-store-") if from_store else None
    tenant_graph = None  # the tenant's own framework, when --from-store reads a tenant that has one
    try:
        if output is not None:
            check_output_folder(output, "a folder for the model and its plots")
        cfg = _registered(_config(ctx, config), registered_model)
        if exported is not None:
            data, fmt, columns, framework = _from_store(from_store, tenant, Path(exported.name), data, fmt, cfg)
            if framework is not None:  # its CASE package, read with the configured CASE options
                from engine.sources import graph_from_config

                tenant_graph = graph_from_config(cfg.graph, framework)
            merge = "off"  # every stored answer is one answer, repeats of an item included
        elif data is None or fmt is None:
            raise ValueError("pass --data PATH --format F, or --from-store URL --tenant T")
        if epochs is not None and epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {epochs}")

        tables, reports = load_splits(data, fmt, cfg, fold, columns, merge)
        from engine.sources import graph_from_config

        graph = graph_from_config(cfg.graph)
        aligned_info: dict[str, Any] | None = None
        dropped: dict[str, int] = {}
        if alignment is not None:
            tables, dropped = _aligned(tables, alignment, min_confidence, graph)
            aligned_info = {"file": str(alignment), "min_confidence": min_confidence, "dropped_attempts": dropped}
    except (ConfigError, DataError, FileNotFoundError, ValueError, TypeError) as exc:
        if exported is not None:  # name what the user gave, not the export it became (deleted below)
            named = f"tenant {tenant!r} of {_redacted(from_store)}"
            _fail(str(exc).replace(str(Path(exported.name) / "answers.csv"), named).replace(exported.name, named))
        _fail(exc)
    finally:
        if exported is not None:  # the tables are in memory now
            exported.cleanup()
    assert data is not None and fmt is not None  # given, or made from the store
    if not as_json and os.environ.get("RANK", "0") == "0":  # what was loaded, before the long part
        for split, report in reports.items():
            typer.echo(f"data {split}: {LoadReport.from_dict(report)}")
        if aligned_info is not None:
            typer.echo(
                f"aligned with {alignment.name if alignment else ''}: attempts without an aligned standard dropped "
                + ", ".join(f"{split} {n}" for split, n in dropped.items())
            )
    try:
        summary = _run_training(
            tables,
            reports,
            model,
            cfg,
            epochs,
            seed,
            progress,
            output,
            {
                "data.path": f"store {_redacted(from_store)} tenant {tenant}" if from_store else str(data),
                "data.format": fmt,
                "data.fold": str(fold or ""),
                "data.merge": merge,
                "data.alignment": str(alignment or ""),
                "data.framework": (tenant_graph.title or "") if tenant_graph is not None else "",
            },
            refit=refit,
            graph=graph,
            tenant_graph=tenant_graph,
        )
        if summary is not None:
            summary["alignment"] = aligned_info
    except ValueError as exc:  # e.g. an unknown hyper-parameter in [model.NAME]; the run is marked FAILED
        _fail(exc)
    if summary is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    if as_json:
        _emit(summary)
        return
    known, units = summary["coverage"]["standards_with_data"], summary["coverage"]["standards_in_graph"]
    typer.echo(f"the trained part covers {known} of the graph's {units} standards; graph BKT the rest")
    own = summary.get("tenant_framework")
    name = summary["registered_model"]
    tenants_own = bool(tenant) and name == cfg.mlflow.tenant_model(tenant or "")
    if own is not None:
        typer.echo(
            f"tenant {tenant!r} is served on its own framework {own['title']!r}: the trained part covers "
            f"{own['standards_with_data']} of its {own['standards_in_framework']} standards. The model is packaged "
            "over the deployment's graph; served to this tenant, it keeps the trained part and graph BKT is "
            "rebuilt over the tenant's framework"
        )
    if known == 0 and own is not None and own["standards_with_data"] > 0:
        typer.echo(
            "warning: the data's standards are the tenant framework's, none of the deployment graph's: "
            "`zpd models promote` and a deployment reload check the deployment's graph and will refuse it; "
            + (
                "PUT /v1/model/tenant checks it over the tenant's framework: name the version "
                f"(models:/{name}/{summary['model_version']}) rather than an alias"
                if tenants_own
                else f"to serve it to tenant {tenant!r} alone, train with --registered-model "
                f"{cfg.mlflow.tenant_model(tenant or '')} and serve it with PUT /v1/model/tenant"
            ),
            err=True,
        )
    elif known == 0:
        typer.echo(
            "warning: the data's skills are none of the graph's standards: the promotion gate will refuse "
            "this model; train with --alignment FILE (skill -> standard)",
            err=True,
        )
    m = summary["metrics"]
    typer.echo(
        f"run {summary['run_id']}  model {summary['model']}  version {summary['model_version']} "
        f"of {summary['registered_model']}"
    )
    if tenants_own and summary["model_version"]:
        typer.echo(
            f"to serve it to tenant {tenant!r} alone: PUT /v1/model/tenant "
            f'{{"uri": "models:/{name}/{summary["model_version"]}"}} with the tenant\'s admin key (or promote it, '
            f"zpd models promote {summary['model_version']} --registered-model {name}, and name the alias there)"
        )
    typer.echo(
        f"test AUC {m['test_auc']:.4f}  accuracy {m['test_accuracy']:.4f}  RMSE {m['test_rmse']:.4f}  "
        f"log-loss {m['test_log_loss']:.4f}  ECE {m['test_ece']:.4f}"
    )
    typer.echo(
        f"{summary['epochs_run']} epochs (best {summary['best_epoch']}), {summary['seconds_per_epoch']:.2f} s per epoch"
    )
    if summary.get("refit_epochs") is not None:
        typer.echo(
            f"refit on train+valid for {summary['refit_epochs']} epochs (test metrics above); "
            f"early-stopped model: test AUC {m['early_stopped_test_auc']:.4f}, valid AUC {m['valid_auc']:.4f}"
        )


#: reads a server's store for --from-store (set by the zpd command line, which may import serving:
#: training does not): (store URL, tenant, folder, configuration) -> (the answers as CSV, its
#: column mapping JSON, counts, the tenant's own CASE framework or None)
STORE_EXPORTER: Callable[[str, str, Path, ZPDConfig], tuple[Path, Path, dict[str, int], Path | None]] | None = None


def _from_store(
    url: str | None, tenant: str | None, folder: Path, data: Path | None, fmt: str | None, cfg: ZPDConfig
) -> tuple[Path, Format, str, Path | None]:
    if data is not None or fmt is not None:
        raise ValueError("--from-store reads the server's answers: pass it without --data and --format")
    if not tenant:
        raise ValueError("--from-store needs --tenant T (the tenant whose answers to train on)")
    if STORE_EXPORTER is None:
        raise ValueError("--from-store works through the `zpd` command (zpd train --from-store URL --tenant T)")
    assert url is not None
    csv_path, columns_path, counts, framework = STORE_EXPORTER(url, tenant, folder, cfg)
    if counts["answers"] == 0:
        raise ValueError(f"tenant {tenant!r} has no answers in {_redacted(url)}")
    return csv_path, "csv", str(columns_path), framework


def _redacted(url: str | None) -> str:
    """A store URL without its password."""
    return "" if url is None else url.split("@")[-1] if "@" in url else url


def _aligned(
    tables: dict[str, Any], path: Path, min_confidence: str, graph: Any
) -> tuple[dict[str, Any], dict[str, int]]:
    """Each split's table over the graph's standards through the alignment file, and the attempts
    dropped for having no aligned standard."""
    from training.alignment import align_standards, load_alignment

    mapping = load_alignment(path, min_confidence)
    unknown = sorted({c for codes in mapping.values() for c in codes if c not in graph})
    if unknown:
        raise ValueError(f"{path}: names standards the graph lacks: {', '.join(unknown[:5])}")
    mapping = {skill: tuple(graph.resolve(c) for c in codes) for skill, codes in mapping.items()}
    aligned, dropped = {}, {}
    for split, table in tables.items():
        aligned[split], dropped[split] = align_standards(table, mapping)
        if aligned[split].n_attempts == 0:
            raise ValueError(f"{path}: no {split} attempt has a skill this alignment maps to a standard")
    return aligned, dropped


def _run_training(
    tables: dict[str, Any],
    reports: dict[str, Any],
    model: str,
    cfg: ZPDConfig,
    epochs: int | None,
    seed: int | None,
    progress: bool,
    output: Path | None,
    tags: dict[str, str],
    refit: bool = False,
    graph: Any = None,
    tenant_graph: Any = None,
) -> dict[str, Any] | None:
    from engine.sources import graph_from_config
    from training import ddp
    from training.packaging import coverage, package_for_graph
    from training.tracking import MLflowTracker
    from training.train import train

    graph = graph if graph is not None else graph_from_config(cfg.graph)
    trained: list[Any] = []

    def package(fitted: Any) -> Any:  # the bundled model's packaging: graph BKT where data is missing
        trained.append(fitted)
        return package_for_graph(fitted, graph, cfg.model.bkt)

    with ddp.distributed() as dctx:
        tracker = None
        if dctx.is_main:
            tags = {**tags, "data.load_reports": json.dumps(reports)[:5000]}
            tracker = MLflowTracker(cfg.mlflow.tracking_uri, cfg.training.experiment, cfg.mlflow.registered_model, tags)
        result = train(
            tables["train"],
            tables["valid"],
            tables["test"],
            model,
            cfg,
            epochs=epochs,
            seed=seed,
            tracker=tracker,
            progress=progress,
            output_dir=output if dctx.is_main else None,
            refit=refit,
            package=package,
        )
    if not dctx.is_main:
        return None
    known, units = coverage(trained[-1], graph)
    own = None  # what the trained part covers of the tenant's own framework (--from-store)
    if tenant_graph is not None:
        with_data, in_framework = coverage(trained[-1], tenant_graph)
        own = {"title": tenant_graph.title, "standards_with_data": with_data, "standards_in_framework": in_framework}
    name = cfg.mlflow.registered_model
    refitted = (
        {"refit_epochs": result.refit_epochs, "refit_history": result.refit_history} if result.refit_epochs else {}
    )
    return {
        "run_id": result.run_id,
        "model_version": result.model_version,
        "model_uri": f"models:/{name}/{result.model_version}" if result.model_version else None,
        "registered_model": name,
        "tracking_uri": cfg.mlflow.tracking_uri,
        "model": model,
        "metrics": result.metrics,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds_per_epoch": result.seconds_per_epoch,
        "world_size": result.world_size,
        "history": result.history,
        "data": result.data,
        "load_reports": reports,
        "coverage": {"standards_with_data": known, "standards_in_graph": units},
        "tenant_framework": own,
        **refitted,
    }


# ------------------------------------------------------------------------------------------ models
@models_app.command("list")
def models_list(
    ctx: typer.Context, config: ConfigOpt = None, registered_model: RegisteredOpt = None, as_json: JsonOpt = False
) -> None:
    """Versions of the registered model, with aliases and test AUC."""
    try:
        cfg = _registered(_config(ctx, config), registered_model)
    except (ConfigError, ValueError) as exc:
        _fail(exc)
    from training.tracking import list_versions

    rows = list_versions(cfg.mlflow.tracking_uri, cfg.mlflow.registered_model)
    if as_json:
        _emit({"registered_model": cfg.mlflow.registered_model, "versions": rows})
        return
    if not rows:
        typer.echo(f"{cfg.mlflow.registered_model}: no versions in {cfg.mlflow.tracking_uri}")
        return
    typer.echo(f"{'version':>7}  {'model':10} {'test_auc':>8}  {'aliases':16} {'created':19}  run_id")
    for r in rows:
        auc = f"{r['test_auc']:.4f}" if r["test_auc"] is not None else "-"
        typer.echo(
            f"{r['version']:>7}  {r['model']:10} {auc:>8}  {','.join(r['aliases']) or '-':16} "
            f"{r['created']:19}  {r['run_id']}"
        )


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version number to promote.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to point at the version.")] = "champion",
    force_reason: Annotated[
        str | None,
        typer.Option("--force-reason", help="Promote even if the version fails the promotion gate, for this reason."),
    ] = None,
    config: ConfigOpt = None,
    registered_model: RegisteredOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias (default ``champion``) at a version: serving loads ``models:/NAME@ALIAS``.
    The version first passes the promotion gate for the configured graph and catalog (coverage
    of the standards and items, spread of its predictions); its report is kept on the version."""
    try:
        cfg = _registered(_config(ctx, config), registered_model)
        from training.promotion import gate_version
        from training.tracking import promote

        if not version.isdigit():
            raise ValueError(f"VERSION must be a version number, got {version!r}")
        if force_reason is not None and not force_reason.strip():
            raise ValueError("--force-reason needs a reason")
        report = gate_version(cfg, version, force_reason.strip() if force_reason else None)
        done = {**promote(version, alias, cfg.mlflow.tracking_uri, cfg.mlflow.registered_model), "gate": report}
    except (ConfigError, ValueError) as exc:  # registry, gate, graph and catalog errors are ValueErrors
        _fail(exc)
    if as_json:
        _emit(done)
    else:
        for check in done["gate"]["checks"]:
            typer.echo(f"{'ok    ' if check['passed'] else 'FAILED'} {check['name']}: {check['detail']}")
        forced = "" if done["gate"]["passed"] else f" (forced: {force_reason})"
        typer.echo(f"{done['registered_model']}@{done['alias']} -> version {done['version']}{forced}")


def main() -> None:
    """``python -m training.cli``: the same commands as ``zpd train`` / ``zpd models`` (for torchrun)."""
    root = typer.Typer(add_completion=False, no_args_is_help=True)
    root.add_typer(train_app)
    root.add_typer(models_app, name="models")
    root()


if __name__ == "__main__":
    main()
