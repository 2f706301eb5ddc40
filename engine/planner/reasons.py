"""The planner's explanations: the human-readable reasons shown with every recommendation."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

from engine.catalog import Item
from engine.planner.context import PlanContext

__all__ = ["Deferred", "ago", "fmt_codes", "item_reasons", "ready_reasons"]


class Deferred(Sequence[str]):
    """Reasons written when first read: a plan without a goal weighs two dozen standards and
    shows one or two, so the others' sentences are never formatted. ``make`` must depend only on
    values fixed when it is made (the planner passes the numbers it would have printed)."""

    __slots__ = ("_make", "_text")

    def __init__(self, make: Callable[[], list[str]]):
        self._make: Callable[[], list[str]] | None = make
        self._text: list[str] | None = None

    def _written(self) -> list[str]:
        if self._text is None:
            assert self._make is not None
            self._text, self._make = self._make(), None
        return self._text

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        return self._written()[i]

    def __len__(self) -> int:
        return len(self._written())

    def __iter__(self) -> Iterator[str]:
        return iter(self._written())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return repr(self._written())


def fmt_codes(codes: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(codes[:limit])
    return shown + (f" and {len(codes) - limit} more" if len(codes) > limit else "")


def ago(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def ready_reasons(ctx: PlanContext, unit: str, mastered: frozenset[str]) -> list[str]:
    pres = list(ctx.index.prereqs[unit])
    shaky = [p for p in pres if p not in mastered]
    if not pres:
        return ["ready: no prerequisites"]
    if not shaky:
        return [f"ready: prerequisites {fmt_codes(pres)} mastered"]
    shown = [p for p in pres if p in mastered]
    if not shown:
        return [f"ready: prerequisites {fmt_codes(shaky)} likely known (none shown mastered yet)"]
    return [f"ready: prerequisites {fmt_codes(shown)} mastered; {fmt_codes(shaky)} likely known"]


def item_reasons(
    why: Sequence[str],
    kind: str,
    item: Item,
    p: float,
    comps: Mapping[str, float],
    band: tuple[float, float],
    interests: frozenset[str],
) -> list[str]:
    reasons = list(why)
    low, high = band
    if low <= p <= high:
        reasons.append(f"P(success) {p:.2f} is in the ZPD band [{low:.2f}, {high:.2f}]")
    elif p < low:
        reasons.append(f"P(success) {p:.2f} is below the ZPD band [{low:.2f}, {high:.2f}]")
    else:
        reasons.append(f"P(success) {p:.2f} is above the ZPD band [{low:.2f}, {high:.2f}]")
    if comps["mastery_check"] > 0 and not any("mastery check" in r for r in why):  # said once
        reasons.append("mastery check: can confirm mastery")
    if comps["spacing"] > 0 and kind != "review":
        reasons.append("also reviews prerequisites that are due")
    matched = sorted(interests & set(item.tags))
    if matched:
        reasons.append(f"matches interests: {', '.join(matched)}")
    if comps["exploration"] >= 1.0:
        reasons.append("exploring: a standard the learning-progress bandit picked")
    return reasons
