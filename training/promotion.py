"""`zpd models promote` through the promotion gate (:mod:`models.gate`), the same checks every
server reload runs: a registered version must know enough of the deployment's standards and
catalog, and its predictions must not be one number. A version that fails is not promoted unless
a reason is given; the gate's report (and the reason) is kept on the version as MLflow tags
(``gate.passed``, ``gate.report``, ``gate.forced_reason``).
"""

from __future__ import annotations

import json
from typing import Any

from configs import ZPDConfig
from engine.sources import graph_from_config, load_catalog_source
from models.base import ItemSpec
from models.gate import GateReport, check_model
from training.tracking import load_registered_model, require_version, tracking_client

__all__ = ["PromotionRefused", "gate_version"]


class PromotionRefused(ValueError):
    """The version failed the gate and no reason to force it was given."""

    def __init__(self, version: str, report: GateReport):
        self.report = report
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures())
        super().__init__(
            f"version {version} is not promoted, it fails the promotion gate: {failed} "
            "(--force-reason TEXT promotes it anyway, and keeps the reason with the version)"
        )


def gate_version(cfg: ZPDConfig, version: str, force_reason: str | None = None) -> dict[str, Any]:
    """Run the gate on a registered version for the configured graph and catalog, record the
    report on the version, and raise :class:`PromotionRefused` if it fails without a reason."""
    name, uri = cfg.mlflow.registered_model, f"models:/{cfg.mlflow.registered_model}/{version}"
    require_version(version, cfg.mlflow.tracking_uri, name)
    model = load_registered_model(uri, cfg.mlflow.tracking_uri)
    graph = graph_from_config(cfg.graph)
    catalog = load_catalog_source(cfg.catalog.source, graph, cfg.catalog.generate_missing)
    g = cfg.gate
    report = check_model(
        model,
        [ItemSpec(i.id, i.standards, i.difficulty) for i in catalog],
        list(graph.learning),
        min_standard_coverage=g.min_standard_coverage,
        min_item_coverage=g.min_item_coverage,
        min_spread=g.min_spread,
    )
    client = tracking_client(cfg.mlflow.tracking_uri)
    client.set_model_version_tag(name, version, "gate.passed", str(report.passed).lower())
    client.set_model_version_tag(name, version, "gate.report", json.dumps(report.to_json())[:5000])
    if not report.passed and not force_reason:
        raise PromotionRefused(version, report)
    if not report.passed and force_reason:
        client.set_model_version_tag(name, version, "gate.forced_reason", force_reason[:500])
    return report.to_json()
