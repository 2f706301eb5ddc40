"""What a learner-state model reads: an observed attempt and a candidate item.

They are domain records, so the planner and the simulator build them without importing
``models``; ``models.base`` re-exports them as part of the model interface.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "ItemSpec"]


@dataclass(frozen=True, slots=True)
class Event:
    """One observed attempt. ``correct`` is 0/1 or a score in [0, 1]; ``timestamp`` in epoch seconds."""

    item_id: str
    standards: tuple[str, ...]
    correct: float
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """What a model needs to know about a candidate item. ``difficulty`` in [0, 1] when known."""

    item_id: str
    standards: tuple[str, ...]
    difficulty: float | None = None
