"""Shared fixtures: the bundled graph is loaded once per session (it is immutable)."""

from __future__ import annotations

import pytest

from engine.graph import StandardsGraph
from engine.sources import load_graph


@pytest.fixture(scope="session")
def bundled_graph() -> StandardsGraph:
    return load_graph()


@pytest.fixture(autouse=True)
def _no_tracking_uri_leaks():
    """MLFLOW_TRACKING_URI directs every `zpd` command (and MLflow sets it process-wide when asked
    to): a test that sets it must not direct the tests after it."""
    import os

    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
