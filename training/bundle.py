"""``zpd models bundle``: build the model shipped with the repository.

It trains a learner-state model on real learner data whose skills are aligned to the bundled
standards (ASSISTments 2009 through ``data/alignments/assist2009_ccss.csv``), wraps it with graph
BKT for the standards the data does not cover, and writes the model folder the server loads by
default (``data/models/default``) with a model card saying what it was trained on and how well it
did on held-out learners.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from configs import ZPDConfig, load_config

__all__ = ["bundle_command"]

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "models" / "default"


def bundle_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="ASSISTments 2009 (problem ids) folder, AKT line format.")],
    model: Annotated[str, typer.Option(help="Model to train (see zpd train --help).")] = "dkt",
    fold: Annotated[int, typer.Option(help="Which of the data's folds to use for train/valid/test.")] = 1,
    epochs: Annotated[int | None, typer.Option(help="Epoch budget (early stopping on the valid learners).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    alignment: Annotated[Path | None, typer.Option(help="Skill -> standard alignment CSV.")] = None,
    min_confidence: Annotated[str, typer.Option(help="Lowest alignment confidence used: low, medium or high.")] = "low",
    out: Annotated[Path, typer.Option(help="Model folder to write.")] = DEFAULT_OUT,
) -> None:
    """Train on real learners aligned to the bundled standards and write the default model."""
    from engine.sources import load_graph
    from engine.textfiles import check_output_folder
    from training.alignment import DEFAULT_ALIGNMENT, align_standards, load_alignment
    from training.cli import load_splits
    from training.packaging import package_for_graph
    from training.train import train

    cfg: ZPDConfig = ctx.obj if isinstance(ctx.obj, ZPDConfig) else load_config()
    try:
        check_output_folder(out, "a model folder")
        mapping = load_alignment(alignment or DEFAULT_ALIGNMENT, min_confidence)
        tables, reports = load_splits(data, "akt", cfg, fold=fold)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    aligned, dropped = {}, {}
    for split, table in tables.items():
        aligned[split], dropped[split] = align_standards(table, mapping)
    graph = load_graph()
    unknown = sorted({c for codes in mapping.values() for c in codes if c not in graph.standards})
    if unknown:
        typer.echo(f"error: the alignment names standards the bundled graph lacks: {', '.join(unknown[:5])}", err=True)
        raise typer.Exit(1)
    started = time.time()
    result = train(aligned["train"], aligned["valid"], aligned["test"], model, cfg, epochs=epochs, seed=seed)
    hybrid = package_for_graph(result.model, graph, cfg.model.bkt)
    hybrid.save(out)
    card = {
        "model": hybrid.name,
        "trained_part": model,
        "fallback_part": "bkt (graph BKT, no training data)",
        "data": str(data.name),
        "fold": fold,
        "alignment": str((alignment or DEFAULT_ALIGNMENT).name),
        "min_confidence": min_confidence,
        "standards_with_data": len(result.model.standards),
        "standards_in_graph": len(graph.standards),
        "learners": {k: t.n_learners for k, t in aligned.items()},
        "attempts": {k: t.n_attempts for k, t in aligned.items()},
        "dropped_attempts": dropped,
        "metrics": {k: round(v, 4) for k, v in result.metrics.items()},
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "train_fingerprint": aligned["train"].fingerprint(),
        "seed": seed,
        "minutes": round((time.time() - started) / 60, 1),
    }
    (out / "MODEL.json").write_text(json.dumps(card, indent=1) + "\n")
    typer.echo(json.dumps(card, indent=1))
