"""The evidence of an event log: the answers that count, and the exposures, in the order they
happened.

The one reading of a learner's log that every fold uses: live ingestion, refolds from a
checkpoint, ``zpd replay`` and its checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.learner import EXPOSURES_SINCE, META_VERSION, Observation
from serving.stores.base import StoredEvent, chronological

__all__ = ["answers", "evidence", "evidence_events", "observation"]


def observation(event: StoredEvent) -> Observation:
    """An answer, or an exposure (``correct`` None)."""
    correct = None if event.kind == "exposure" else event.correct
    assert event.kind == "exposure" or correct is not None  # an answer
    return Observation(event.item_id, event.standards, correct, event.time, event.source, event.unit)


def evidence(log: Sequence[StoredEvent], layout: int = META_VERSION) -> list[Observation]:
    """What a fold reads of an event log: the answers that count (not voided; voids and ignored
    statements are nothing to fold) and the exposures (an activity done without an answer: see
    :meth:`engine.learner.LearnerCore.observe`), in the order they happened: by
    :attr:`StoredEvent.time`, events of the same time in the log's order. An answer sent late (a
    device that synced offline work, statements read back from an LRS after an outage) counts
    where it happened, not where it arrived. ``layout``: a record's meta layout, whose fold
    read answers only before ``EXPOSURES_SINCE``."""
    return [observation(e) for e in evidence_events(log, layout)]


def evidence_events(log: Sequence[StoredEvent], layout: int = META_VERSION) -> list[StoredEvent]:
    """The stored events :func:`evidence` reads, in its order (when each arrived, say)."""
    voided = {e.voids for e in log if e.kind == "void"}
    kinds = ("answer", "exposure") if layout >= EXPOSURES_SINCE else ("answer",)
    return [e for e in chronological(log) if e.kind in kinds and e.id not in voided]


def answers(log: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The answers that count of an event log (what a model is trained or scored on), in
    :func:`evidence`'s order."""
    return [e for e in evidence_events(log) if e.kind == "answer"]
