"""Shared fixtures: the bundled graph is loaded once per session (it is immutable)."""

from __future__ import annotations

import pytest

from engine.graph import StandardsGraph
from engine.sources import load_graph


@pytest.fixture(scope="session")
def bundled_graph() -> StandardsGraph:
    return load_graph()


@pytest.fixture(autouse=True, scope="session")
def _own_data_folder(tmp_path_factory):
    """The default configuration's data folder (its SQLite store and MLflow registry) is the
    suite's own (``configs.DATA_BASE``): no test reads or writes the project's ``var/``, where
    ``make serve`` keeps a developer's learners and models. (The commands the tests start are
    given a configuration or a store of their own.)"""
    import configs

    base = tmp_path_factory.mktemp("project")
    before, configs.DATA_BASE = configs.DATA_BASE, base
    yield base
    configs.DATA_BASE = before


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
