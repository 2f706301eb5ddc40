"""The ``zpd`` command line: the composition root that wires config, engine, training and serving.

Every command takes its inputs from options (``--help`` everywhere); errors in user input print
one clear line on stderr and exit with status 1.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import networkx as nx
import orjson
import typer

from configs import ConfigError, ZPDConfig, load_config
from engine import queries
from engine.case import write_case
from engine.catalog import Catalog, CatalogError, Modality, load_catalog, save_catalog
from engine.catalog import coverage as catalog_coverage
from engine.codes import CODE_STYLES, CodeStyle
from engine.graph import GraphError, StandardsGraph, UnknownStandardError, grade_number
from engine.graph_csv import EdgeColumns
from engine.planner.index import PlannerIndex
from engine.sources import graph_from_config, load_catalog_source
from engine.textfiles import OutputPathError, TextFileError, check_output_file, read_text
from serving.cli import keys_app, lrs_app, plan_batch, replay, roster_app, serve, store_from_option
from serving.export import store_exporter
from training import cli as training_cli
from training.bundle import bundle_command
from training.cli import models_app, train_app
from zpd.simulate import simulate_classes_command, simulate_command

app = typer.Typer(
    help="zpd-engine: adaptive learning paths over a standards knowledge graph.",
    no_args_is_help=True,
    add_completion=False,
)
graph_app = typer.Typer(help="Inspect, validate and export standards graphs.", no_args_is_help=True)
catalog_app = typer.Typer(help="Validate and inspect content catalogs.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")
app.add_typer(catalog_app, name="catalog")
app.command("serve")(serve)
app.command("simulate")(simulate_command)
app.command("simulate-classes")(simulate_classes_command)
app.command("replay")(replay)
app.command("plan-batch")(plan_batch)
app.add_typer(keys_app, name="keys")
app.add_typer(roster_app, name="roster")
app.add_typer(lrs_app, name="lrs")
training_cli.STORE_EXPORTER = store_exporter  # `zpd train --from-store`: the composition root reads stores
app.add_typer(train_app)  # `zpd train ...`
models_app.command("bundle")(bundle_command)
app.add_typer(models_app, name="models")

GraphOpt = Annotated[
    str | None,
    typer.Option(
        "--graph",
        help="Graph source: a CSV folder, an edge-list .csv/.tsv file or a CASE .json file "
        "(default: the configured graph, the bundled Coherence Map).",
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Columns of the graph's edge table (prerequisites.csv or an edge-list file), as "
        "role=column pairs, e.g. prerequisite=requires,dependent=exercise (a delimiter=tab pair "
        "too), or a JSON file of them (default: prerequisite and dependent, or the graph.columns setting).",
    ),
]
CodesOpt = Annotated[
    str | None,
    typer.Option(
        "--codes",
        help="How the graph's codes compare: ccss (every spelling of a CCSS standard is one code, "
        "other codes exact) or exact (default: ccss, or the graph.codes setting for the configured graph).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
USER_ERRORS = (GraphError, CatalogError, ConfigError, UnknownStandardError, OutputPathError)


def _config(ctx: typer.Context) -> ZPDConfig:
    return ctx.obj if isinstance(ctx.obj, ZPDConfig) else load_config()


def _graph(
    ctx: typer.Context, source: str | None, columns: str | None = None, codes: str | None = None
) -> StandardsGraph:
    mapping = _edge_columns(columns) if columns is not None else None
    if codes is not None and codes not in CODE_STYLES:
        raise GraphError(f"--codes must be one of {', '.join(CODE_STYLES)}, got {codes!r}")
    return graph_from_config(_config(ctx).graph, source, columns=mapping, codes=cast(CodeStyle | None, codes))


def _edge_columns(spec: str) -> EdgeColumns:
    """``--columns``: role=column pairs, or a JSON file of them (as ``zpd train --columns``)."""
    if "=" in spec or not spec.lower().endswith(".json"):
        return EdgeColumns.parse(spec)
    path = Path(spec)
    try:
        fields = orjson.loads(read_text(path))
    except FileNotFoundError:
        raise GraphError(f"{path}: column mapping file not found") from None
    except TextFileError as exc:
        raise GraphError(str(exc)) from None
    except orjson.JSONDecodeError as exc:
        raise GraphError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise GraphError(f'{path}: expected a JSON object such as {{"prerequisite": "requires", ...}}')
    return EdgeColumns.from_mapping(fields, str(path))


def _emit(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _codes(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file merged over configs/default.toml.")] = None,
) -> None:
    if not sys.stderr.isatty():  # a log: MLflow's artifact bars would be lines of carriage returns
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        ctx.obj = load_config(config)
    except ConfigError as exc:
        _fail(exc)


# ---------------------------------------------------------------------------- graph
def graph_stats(graph: StandardsGraph) -> dict[str, Any]:
    internal = graph.internal_codes
    grades = Counter(graph.standards[c].grade or "?" for c in internal)
    return {
        "title": graph.title,
        "standards": len(internal),
        "external_standards": len(graph.standards) - len(internal),
        "learnable_units": graph.learning.number_of_nodes(),
        "standards_with_parts": len(graph.parts),
        "prerequisite_edges": graph.prereq.number_of_edges(),
        "related_links": len(graph.related),
        "resources": len(graph.resources),
        "is_dag": nx.is_directed_acyclic_graph(graph.prereq),
        "layers": len(queries.topological_layers(graph)),
        "roots": sum(1 for c in internal if graph.prereq.in_degree(c) == 0),
        "grades": dict(
            sorted(grades.items(), key=lambda kv: (grade_number(kv[0]) is None, grade_number(kv[0]) or 0, kv[0]))
        ),
        "warnings": list(graph.warnings),
    }


@graph_app.command("stats")
def cmd_graph_stats(
    ctx: typer.Context,
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts of standards, edges and links; whether the prerequisite graph is a DAG."""
    try:
        g = _graph(ctx, graph, columns, code_style)
    except USER_ERRORS as exc:
        _fail(exc)
    stats = graph_stats(g)
    if as_json:
        _emit(stats)
        return
    for key, value in stats.items():
        if key != "warnings":
            typer.echo(f"{key:22} {value}")
    for warning in stats["warnings"]:
        typer.echo(f"warning: {warning}")


def describe_standard(graph: StandardsGraph, code: str) -> dict[str, Any]:
    std = graph[code]
    return {
        "code": std.code,
        "description": std.description,
        "grade": std.grade,
        "domain": {"code": std.domain_code, "name": std.domain_name},
        "cluster": {"code": std.cluster_code, "name": std.cluster_name, "emphasis": std.cluster_emphasis},
        "parent": std.parent,
        "parts": list(graph.parts.get(std.code, ())),
        "prerequisites": queries.prerequisites(graph, std.code),
        "dependents": queries.dependents(graph, std.code),
        "related": graph.sort(next(iter(pair - {std.code})) for pair in graph.related if std.code in pair),
        "aliases": list(std.aliases),
        "identifier": std.identifier,
        "external": std.external,
        "resources": [{"url": r.url, "title": r.title} for r in graph.resources if r.standard == std.code],
    }


@graph_app.command("show")
def cmd_graph_show(
    ctx: typer.Context,
    code: str,
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One standard: prerequisites, dependents, parent, parts, related. Any spelling of a CCSS code works."""
    try:
        g = _graph(ctx, graph, columns, code_style)
        info = describe_standard(g, code)
    except USER_ERRORS as exc:
        _fail(exc)
    if as_json:
        _emit(info)
        return
    typer.echo(f"{info['code']} (grade {info['grade']}): {info['description']}")
    for key in ("parent", "parts", "prerequisites", "dependents", "related", "aliases"):
        value = info[key]
        typer.echo(f"  {key:14} {', '.join(value) if isinstance(value, list) else value or '-'}")


@graph_app.command("validate")
def cmd_graph_validate(
    ctx: typer.Context, source: str, columns: ColumnsOpt = None, code_style: CodesOpt = None
) -> None:
    """Check a graph source: a CSV folder (prerequisites.csv, optionally standards.csv and
    related.csv), an edge-list .csv/.tsv file or a CASE .json. Exit 0 when valid, 1 with the
    error otherwise."""
    try:
        g = _graph(ctx, source, columns, code_style)
    except USER_ERRORS as exc:
        _fail(exc)
    for warning in g.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(
        f"valid: {len(g.internal_codes)} standards, {g.prereq.number_of_edges()} prerequisite edges, "
        f"{len(g.related)} related links, no cycle ({len(g.warnings)} warning(s))"
    )


@graph_app.command("route")
def cmd_graph_route(
    ctx: typer.Context,
    goal: Annotated[str, typer.Option(help="Goal standards, comma-separated.")],
    mastered: Annotated[
        str, typer.Option(help="Mastered standards, comma-separated (a parent covers its parts).")
    ] = "",
    literal: Annotated[
        bool,
        typer.Option("--literal", help="Do not infer that the prerequisites of a mastered standard are mastered too."),
    ] = False,
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The standards still to learn to reach the goal, in a valid learning order.

    A mastered standard implies its prerequisites unless --literal is given.
    """
    try:
        g = _graph(ctx, graph, columns, code_style)
        goals = _codes(goal)
        done = list(
            queries.expand_mastery(g, _codes(mastered)) if literal else queries.downward_closure(g, _codes(mastered))
        )
        if not goals:
            raise GraphError("--goal needs at least one standard code")
        steps = queries.route(g, done, goals)
        result: dict[str, Any] = {
            "goal": [g.resolve(c) for c in goals],
            "mastered": sorted(queries.expand_mastery(g, done), key=g.order_of),
            "route": [
                {"code": c, "grade": g.standards[c].grade, "description": g.standards[c].description} for c in steps
            ],
            "length": len(steps),
            "ready_now": [c for c in queries.outer_fringe(g, done) if c in set(steps)],
        }
    except USER_ERRORS as exc:
        _fail(exc)
    if as_json:
        _emit(result)
        return
    typer.echo(f"{len(steps)} standard(s) to learn; ready now: {', '.join(result['ready_now']) or '-'}")
    for i, step in enumerate(result["route"], start=1):
        typer.echo(f"{i:4}. {step['code']:14} grade {step['grade']}: {(step['description'] or '')[:80]}")


@graph_app.command("fringe")
def cmd_graph_fringe(
    ctx: typer.Context,
    mastered: Annotated[str, typer.Option(help="Mastered standards, comma-separated.")] = "",
    literal: Annotated[
        bool,
        typer.Option("--literal", help="Do not infer that the prerequisites of a mastered standard are mastered too."),
    ] = False,
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Outer fringe (ready to learn) and inner fringe (edge of what is mastered)."""
    try:
        g = _graph(ctx, graph, columns, code_style)
        codes = _codes(mastered)
        done = queries.expand_mastery(g, codes) if literal else queries.downward_closure(g, codes)
        result = {"outer_fringe": queries.outer_fringe(g, done), "inner_fringe": queries.inner_fringe(g, done)}
    except USER_ERRORS as exc:
        _fail(exc)
    if as_json:
        _emit(result)
        return
    typer.echo(f"outer fringe ({len(result['outer_fringe'])}): {', '.join(result['outer_fringe'])}")
    typer.echo(f"inner fringe ({len(result['inner_fringe'])}): {', '.join(result['inner_fringe'])}")


@graph_app.command("export-case")
def cmd_graph_export_case(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="CASE package .json file to write.")],
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
) -> None:
    """Write the graph as a CASE 1.1 package (loads back to the same graph)."""
    try:
        check_output_file(output, "a CASE package .json file")
        g = _graph(ctx, graph, columns, code_style)
        write_case(g, output)
    except USER_ERRORS as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OutputPathError(f"{output}: cannot write ({exc.strerror or exc})"))
    typer.echo(f"wrote {output}: {len(g.internal_codes)} standards, {g.prereq.number_of_edges()} precedes associations")


# ---------------------------------------------------------------------------- catalog
@catalog_app.command("validate")
def cmd_catalog_validate(
    ctx: typer.Context,
    file: Path,
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Also count the learners of this store that serving the file folds again (reads every event log).",
        ),
    ] = None,
) -> None:
    """Check a catalog file (.csv or .json) against the graph. Exit 0 when valid. Over the
    deployment's graph, also say what serving it would change against the configured catalog."""
    try:
        g = _graph(ctx, graph, columns, code_style)
        catalog = load_catalog(file, g)
        cfg = _config(ctx)
        served = None if graph is not None else load_catalog_source(cfg.catalog.source, g, cfg.catalog.generate_missing)
    except USER_ERRORS as exc:
        _fail(exc)
    modalities = Counter(item.modality.value for item in catalog)
    withdrawn = sum(1 for item in catalog if item.withdrawn)
    typer.echo(
        f"valid: {len(catalog)} items on {len(catalog.standards)} standards ({dict(modalities)})"
        + (f"; {withdrawn} withdrawn (answers on them count, they are never offered)" if withdrawn else "")
    )
    if served is None:
        if store is not None:
            _fail(
                ValueError("--store compares with the configured catalog, over the configured graph: leave --graph out")
            )
        return
    changes = CatalogChanges.between(served, catalog, g)
    typer.echo(changes.describe(cfg.catalog.source))
    if store is not None:
        opened = store_from_option(ctx, store)
        try:
            affected, total = changes.learners(opened)
        finally:
            opened.close()
        typer.echo(f"{affected} of the store's {total} learner(s) answered there: folded again on their next request")


@dataclass
class CatalogChanges:
    """What serving one catalog instead of another changes, read as the server reads answers:
    :func:`serving.content.changed_items`, and the units with a mastery check on offer."""

    counts: dict[str, int]
    moved: list[str]  # the items moved to other standards
    changed: frozenset[str]  # the items an answer on which folds otherwise
    flipped: set[str]  # the learnable units that gain or lose their only offered mastery check
    units: dict[str, tuple[str, ...]]  # item id -> its learnable units, under either catalog

    @classmethod
    def between(cls, served: Catalog, new: Catalog, graph: StandardsGraph) -> CatalogChanges:
        from engine.planner.index import PlannerIndex
        from serving.content import changed_items, fold_alignment

        then, now = fold_alignment(served), fold_alignment(new)
        changed = changed_items(then, now)
        both = [i for i in sorted(changed) if i in then and i in now]
        moved = [i for i in both if then[i][0] != now[i][0]]
        before, after = PlannerIndex.build(graph, served), PlannerIndex.build(graph, new)
        counts = {
            "new": sum(1 for i in now if i not in then),
            "removed": sum(1 for i in then if i not in now),
            "moved to other standards": len(moved),
            "made a mastery check or no longer one": len(both) - len(moved),
            "withdrawn": sum(1 for i in new if i.withdrawn and (i.id not in served or not served[i.id].withdrawn)),
            "offered again": sum(1 for i in new if not i.withdrawn and i.id in served and served[i.id].withdrawn),
        }
        units = {i: (*before.item_units.get(i, ()), *after.item_units.get(i, ())) for i in then.keys() | now.keys()}
        return cls(counts, moved, changed, before.checkable ^ after.checkable, units)

    def describe(self, source: str) -> str:
        """One line: what changes, and who is folded again."""
        parts = [f"{n} {what}" for what, n in self.counts.items() if n]
        if self.moved:
            at = parts.index(f"{len(self.moved)} moved to other standards")
            parts[at] += f" ({', '.join(self.moved[:5])}{', ...' if len(self.moved) > 5 else ''})"
        if self.flipped:
            parts.append(f"{len(self.flipped)} learnable unit(s) gaining or losing their only offered mastery check")
        against = f"against the catalog configured now ({source})"
        if not parts:
            return f"{against}: the same items, as answers read them"
        refold = (
            "; served, it folds again, on their next request, the learners who answered an item that changed"
            + (" or practised such a unit" if self.flipped else "")
            if self.changed or self.flipped
            else ""
        )
        return f"{against}: {', '.join(parts)}{refold}"

    def learners(self, store: Any) -> tuple[int, int]:
        """(learners with an answer that folds otherwise, learners) of ``store``."""
        from serving.content import touched
        from serving.evidence import evidence

        affected = total = 0
        for tenant, learner in store.learners():
            total += 1
            answers = evidence(store.events(tenant, learner))
            affected += touched(answers, self.changed, self.flipped, lambda o: self.units.get(o.item_id, ()))
        return affected, total


@catalog_app.command("coverage")
def cmd_catalog_coverage(
    ctx: typer.Context,
    catalog: Annotated[
        str | None, typer.Option("--catalog", help="Catalog file (default: the configured catalog).")
    ] = None,
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which standards have which modalities (items on a parent count for its parts)."""
    try:
        cfg = _config(ctx)
        g = _graph(ctx, graph, columns, code_style)
        cat = load_catalog_source(catalog or cfg.catalog.source, g, cfg.catalog.generate_missing)
    except USER_ERRORS as exc:
        _fail(exc)
    report = catalog_coverage(cat, g)
    learnable = [c for c in report if g.is_learnable(c)]
    summary: dict[str, dict[str, Any]] = {
        m.value: {
            "standards": sum(1 for c in report if report[c].get(m.value)),
            "learnable_without": [c for c in learnable if not report[c].get(m.value)],
        }
        for m in Modality
    }
    real = {c for item in cat if item.source != "generated" for c in item.standards}
    # as the planner sees it: what a learner can show learned, and what only past a gap
    index = PlannerIndex.build(g, cat)
    units_of, ancestors = index.item_units, index.ancestors
    planned: dict[str, Any] = {
        "standards": len(index.order),
        "practised": len(index.practised),
        "taught_only": g.sort(index.taught_only),
        "without_items": g.sort(u for u, items in index.items_for.items() if not items),
        "practised_only_past_a_gap": g.sort(
            u
            for u in index.practised
            if all(
                any(v != u and u in ancestors[v] for v in units_of[item.id])
                for item in index.items_for[u]
                if item.modality.answers
            )
        ),
    }
    result = {
        "items": len(cat),
        "generated_items": sum(1 for item in cat if item.source == "generated"),
        "standards": len(report),
        "standards_with_real_content": len(real),
        "standards_without_items": [c for c in report if not report[c]],
        "modalities": summary,
        "learnable": planned,
        "by_standard": report,
    }
    if as_json:
        _emit(result)
        return
    typer.echo(
        f"{result['items']} items ({result['generated_items']} generated) on {result['standards']} standards; "
        f"{len(real)} standards have real content"
    )
    typer.echo(f"{'modality':16} {'standards':>9}  learnable standards without it")
    for name, info in summary.items():
        missing = info["learnable_without"]
        typer.echo(
            f"{name:16} {info['standards']:>9}  {len(missing)}"
            + (f" (e.g. {', '.join(missing[:4])})" if missing else "")
        )

    def some(codes: list[str]) -> str:
        return f"{len(codes)}" + (f" (e.g. {', '.join(codes[:4])})" if codes else "")

    typer.echo(
        f"{planned['practised']} of {planned['standards']} learnable standards have something that sends an answer; "
        f"plans pass over the others: {some(planned['taught_only'])} with only lessons, readings or videos, "
        f"{some(planned['without_items'])} with no item"
    )
    if planned["practised_only_past_a_gap"]:
        typer.echo(
            f"{some(planned['practised_only_past_a_gap'])} practised only together with standards that need them "
            "first: given so, past that gap (practice on them alone would avoid it)"
        )


@catalog_app.command("export")
def cmd_catalog_export(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write (.csv or .json).")],
    graph: GraphOpt = None,
    columns: ColumnsOpt = None,
    code_style: CodesOpt = None,
) -> None:
    """Write the configured catalog (by default the bundled one) to a file you can edit."""
    try:
        check_output_file(output, "a catalog .csv or .json file")
        cfg = _config(ctx)
        g = _graph(ctx, graph, columns, code_style)
        cat = load_catalog_source(cfg.catalog.source, g, cfg.catalog.generate_missing)
        save_catalog(cat, output)
    except USER_ERRORS as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OutputPathError(f"{output}: cannot write ({exc.strerror or exc})"))
    typer.echo(f"wrote {output}: {len(cat)} items")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
