"""What a learner-state model reads (an observed attempt, a candidate item) and what it answers
about standards (:class:`Mastery`).

They are domain records, so the planner and the simulator build them without importing
``models``; ``models.base`` re-exports them as part of the model interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Event", "ItemSpec", "Mastery"]


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


class Mastery(dict[str, float]):
    """P(mastered) per standard code, as a plain mapping, keeping the array it was made from: the
    planner asks every request which standards are believed known (:meth:`at_least`), and a scan
    of the whole graph in Python costs more than the rest of building it."""

    __slots__ = ("_codes", "_values")

    def __init__(self, codes: Sequence[str], values: np.ndarray):
        super().__init__(zip(codes, values.tolist()))
        self._codes, self._values = codes, values

    def at_least(self, threshold: float) -> list[str]:
        """The codes with P(mastered) >= ``threshold``, in the model's order."""
        codes = self._codes
        return [codes[k] for k in np.flatnonzero(self._values >= threshold).tolist()]
