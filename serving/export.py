"""The answers a tenant's learners gave, out of the store, as a training table.

`zpd train --from-store URL --tenant T` and `zpd events export` read through here: one CSV row per
answer (exposures, ignored statements and voided answers are left out), with the item and the
standards as the server aligned them, so a model trained on it covers the deployment's graph by
construction. The learner ids are the pseudonymous ids the store keeps.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.stores.base import LearnerStore, chronological

__all__ = ["COLUMNS", "export_answers", "store_exporter"]

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


def export_answers(store: LearnerStore, tenant: str, path: Path) -> dict[str, int]:
    """Write the tenant's answers to ``path``; returns counts of learners, answers and events left out."""
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
                writer.writerow([learner, event.item_id, repr(float(event.correct)), "~~".join(event.standards), when])
                answers += 1
                wrote = True
            learners += wrote
    return {"learners": learners, "answers": answers, "left_out": left_out}


def store_exporter(url: str, tenant: str, folder: Path) -> tuple[Path, Path, dict[str, int], Path | None]:
    """`zpd train --from-store`: the tenant's answers in ``folder`` as a CSV file, the column
    mapping that reads it, the counts, and the CASE package of the tenant's own framework
    (``POST /v1/standards/import``; its answers are on that framework's standards) or None
    (``training.cli.STORE_EXPORTER``)."""
    from serving.content import framework_setting
    from serving.stores import open_store

    with open_store(url) as store:
        answers = folder / "answers.csv"
        counts = export_answers(store, tenant, answers)
        framework = store.get_setting(framework_setting(tenant))
    package = None
    if framework is not None:
        package = folder / "framework.json"
        package.write_text(framework[1], encoding="utf-8")
    columns = folder / "columns.json"
    columns.write_text(json.dumps(COLUMNS))
    return answers, columns, counts, package
