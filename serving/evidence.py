"""The evidence of an event log: the answers that count, in the order they happened.

The one reading of a learner's log that every fold uses: live ingestion, refolds from a
checkpoint, ``zpd replay`` and its checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.learner import Observation
from serving.stores.base import StoredEvent, chronological

__all__ = ["evidence", "evidence_events", "observation"]


def observation(event: StoredEvent) -> Observation:
    assert event.correct is not None  # an answer
    return Observation(event.item_id, event.standards, event.correct, event.time, event.source, event.unit)


def evidence(log: Sequence[StoredEvent]) -> list[Observation]:
    """The answers of an event log that count (not voided; exposures and voids are not evidence),
    in the order they happened: by :attr:`StoredEvent.time`, answers of the same time in the
    log's order. An answer sent late (a device that synced offline work, statements read back
    from an LRS after an outage) counts where it happened, not where it arrived."""
    return [observation(e) for e in evidence_events(log)]


def evidence_events(log: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The stored events :func:`evidence` reads, in its order (when each arrived, say)."""
    voided = {e.voids for e in log if e.kind == "void"}
    return [e for e in chronological(log) if e.kind == "answer" and e.id not in voided]
