"""Shared fixtures: the bundled graph is loaded once per session (it is immutable)."""

from __future__ import annotations

import pytest

from engine.graph import StandardsGraph
from engine.sources import load_graph


@pytest.fixture(scope="session")
def bundled_graph() -> StandardsGraph:
    return load_graph()
