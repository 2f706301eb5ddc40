"""The answers a tenant's learners gave, out of the store, as a training table.

`zpd train --from-store URL --tenant T` and `zpd events export` read through here: one CSV row per
answer (exposures, ignored statements and voided answers are left out), with the item and the
standards a fold reads for it (the tenant's catalog as it is now: an item moved to other standards
is on its new ones for every answer, and an activity aligned after it was answered is on its
standards; else the standards the answer was received with), so a model trained on it covers the
deployment's graph by construction and learns what the server folds. The learner ids are the
pseudonymous ids the store keeps.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.catalog import Catalog
from serving.stores.base import LearnerStore, chronological

if TYPE_CHECKING:
    from configs import ZPDConfig

__all__ = ["COLUMNS", "export_answers", "store_exporter", "tenant_items"]

#: the CsvColumns fields (training.columns) that read the exported file
COLUMNS: dict[str, Any] = {
    "learner": "learner_id",
    "item": "item_id",
    "score": "score",
    "standards": "standards",
    "standards_sep": "~~",
    "timestamp": "timestamp",
    "timestamp_format": "iso",
}


def export_answers(store: LearnerStore, tenant: str, path: Path, catalog: Catalog | None = None) -> dict[str, int]:
    """Write the tenant's answers to ``path``, each on the standards it counts on in ``catalog``
    (the tenant's, see :func:`tenant_items`; without it, those it was received with); returns
    counts of learners, answers and events left out."""
    catalog = catalog or Catalog()
    learners = answers = left_out = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["learner_id", "item_id", "score", "standards", "timestamp"])
        for _, learner in store.learners(tenant):
            log = chronological(store.events(tenant, learner))
            voided = {e.voids for e in log if e.kind == "void" and e.voids}
            wrote = False
            for event in log:
                if event.kind != "answer" or event.correct is None or event.id in voided:
                    left_out += 1
                    continue
                when = datetime.fromtimestamp(event.time, UTC).isoformat().replace("+00:00", "Z")
                standards = catalog.standards_of(event.item_id, event.standards)
                writer.writerow([learner, event.item_id, repr(float(event.correct)), "~~".join(standards), when])
                answers += 1
                wrote = True
            learners += wrote
    return {"learners": learners, "answers": answers, "left_out": left_out}


def tenant_items(store: LearnerStore, tenant: str, config: ZPDConfig) -> Catalog:
    """The catalog ``tenant`` is served (the deployment's configured catalog and the tenant's own
    items, over its own framework when it has one), read from ``store`` as a worker builds it."""
    import orjson

    from engine.sources import graph_from_config, load_catalog_source
    from serving.content import catalog_setting, framework_setting, parse_framework, tenant_catalog

    graph = graph_from_config(config.graph)
    shared = load_catalog_source(config.catalog.source, graph, config.catalog.generate_missing)
    records, framework = store.get_setting(catalog_setting(tenant)), store.get_setting(framework_setting(tenant))
    own = parse_framework(orjson.loads(framework[1]), config.graph) if framework else graph
    return tenant_catalog(shared, own, orjson.loads(records[1]) if records else [], framework is None)[0]


def store_exporter(
    url: str, tenant: str, folder: Path, config: ZPDConfig
) -> tuple[Path, Path, dict[str, int], Path | None]:
    """`zpd train --from-store`: the tenant's answers in ``folder`` as a CSV file, the column
    mapping that reads it, the counts, and the CASE package of the tenant's own framework
    (``POST /v1/standards/import``; its answers are on that framework's standards) or None
    (``training.cli.STORE_EXPORTER``). ``config``: the deployment's (its graph and catalog)."""
    from serving.content import framework_setting
    from serving.stores import open_store

    with open_store(url) as store:
        answers = folder / "answers.csv"
        counts = export_answers(store, tenant, answers, tenant_items(store, tenant, config))
        framework = store.get_setting(framework_setting(tenant))
    package = None
    if framework is not None:
        package = folder / "framework.json"
        package.write_text(framework[1], encoding="utf-8")
    columns = folder / "columns.json"
    columns.write_text(json.dumps(COLUMNS))
    return answers, columns, counts, package
