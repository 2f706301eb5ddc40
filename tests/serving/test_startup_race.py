"""Several workers starting at once on a fresh data directory: the MLflow registry database and
the store's schema are created once, without a migration error in any worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WORKER = """
import sys
from serving.model_provider import registry_client
from serving.stores import open_store
from serving.auth import KeyCache
from serving.ui.session import UiAuth

tracking, store_url = sys.argv[1], sys.argv[2]
client = registry_client(tracking)
client.search_registered_models()
store = open_store(store_url)
print(UiAuth(store, KeyCache(store)).secret()[:8])
store.close()
"""


def test_workers_starting_together_on_a_fresh_data_dir(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = f"sqlite:///{tmp_path / 'zpd.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, tracking, store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "migration" not in err.lower(), err[-2000:]
    secrets = {out.strip() for out, _ in outputs}
    assert len(secrets) == 1  # every worker signs sessions with the same secret
