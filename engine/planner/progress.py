"""Mastery-based advancement: the per-learner progress record, folded attempt by attempt.

A standard is *mastered* only on strong evidence: the model's P(mastered) reaches the threshold,
the learner answered ``streak_required`` times in a row correctly, and (when required) that
streak includes a passed mastery-check item. A learner may also *test out* of a standard the
model already believes known: a passed mastery check as the first attempt, leaving
P(mastered) >= ``test_out_threshold``. Mastered standards are re-verified later; evidence
against them (a failed check, failures in a row, P(mastered) falling below ``reopen_threshold``)
reopens them; a failed item on several standards is blamed on the ones not mastered yet, not on
a mastered part. Practice on a standard counts as partial review of its prerequisites.

The record is plain data (``to_json`` / ``from_json``) so a store can keep it next to the model state.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import TypeVar

from configs import PlannerConfig

K = TypeVar("K")

__all__ = ["Attempt", "Progress", "StandardProgress", "mark_mastered", "record_attempt"]

RECENT = 6  # outcomes kept per standard (learning progress and struggle detection)
#: the days of activity counts a learner keeps (their own pace, see :meth:`Progress.pace`)
PACE_WINDOW_DAYS = 28
#: the least days (the first activity's and today included) a pace is told from a start
PACE_MIN_DAYS = 7
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as the planner sees it. ``time`` in seconds; ``correct`` 0/1 or a score."""

    item_id: str
    units: tuple[str, ...]
    correct: float
    time: float
    mastery_check: bool = False

    @property
    def success(self) -> bool:
        return self.correct >= 0.5


@dataclass(slots=True)
class StandardProgress:
    """One learner's progress on one unit: a value, replaced (``dataclasses.replace``) and never
    changed in place. Not frozen: every request reads a learner's rows, and a frozen dataclass
    takes five times as long to build."""

    attempts: int = 0
    successes: int = 0
    streak: int = 0
    failures_in_a_row: int = 0
    checked: bool = False  # the current streak includes a passed mastery check
    recent: tuple[float, ...] = ()
    last_activity: int = 0  # the learner's activity number of the last attempt (for recency)
    first_time: float | None = None
    last_time: float | None = None
    mastered_at: float | None = None
    mastered_by: str | None = None  # "evidence", "test-out" or "placement"
    verified_at: float | None = None
    last_review: float | None = None
    reviews: int = 0
    reopened: int = 0

    @property
    def mastered(self) -> bool:
        return self.mastered_at is not None

    def to_row(self) -> list:
        """The fields in declaration order (``recent`` as a list): the stored form."""
        row = list(_ROW(self))
        row[_RECENT] = list(self.recent)
        return row

    @classmethod
    def from_row(cls, row: Sequence) -> StandardProgress:
        values = list(row)
        values[_RECENT] = tuple(values[_RECENT])
        return cls(*values)


@dataclass
class Progress:
    """Progress per learnable unit plus the learner's recent item ids (for novelty)."""

    units: dict[str, StandardProgress] = field(default_factory=dict)
    recent_items: list[str] = field(default_factory=list)
    activities: int = 0
    #: the activity number at which a standard was last mastered (to tell when learning stalls)
    last_mastery: int = 0
    #: the learner's last outcomes (success 1, failure 0), whatever the standard
    outcomes: list[float] = field(default_factory=list)
    #: answers on items that practise several units at once (units -> answers): each counts once
    #: per unit in ``units``, and once only for a standard made of several of them
    shared: dict[tuple[str, ...], int] = field(default_factory=dict)
    #: activities per day (day number since the epoch, UTC -> activities) over the last
    #: ``PACE_WINDOW_DAYS`` days of the learner's work, and the time of their first activity
    days: dict[int, int] = field(default_factory=dict)
    started: float | None = None

    def note_recent(self, item_id: str, keep: int) -> None:
        """``item_id`` is the learner's latest activity; the ``keep`` latest are kept."""
        self.recent_items.append(item_id)
        del self.recent_items[:-keep]

    def pace(self, now: float, min_days: int = PACE_MIN_DAYS) -> tuple[float, int] | None:
        """The learner's own pace at ``now``: activities per calendar day over the last
        ``PACE_WINDOW_DAYS`` days (``now``'s day included), or since their first activity when that
        is more recent, and the number of days it is measured over. None over fewer than
        ``min_days`` days (the first activity's day and today included): too little to tell a
        pace from a start."""
        if self.started is None:
            return None
        today = math.floor(now / DAY)
        span = min(PACE_WINDOW_DAYS, today - math.floor(self.started / DAY) + 1)
        if span < min_days:
            return None
        return sum(n for day, n in self.days.items() if today - span < day <= today) / span, span

    def answers_on_each(self, unit_sets: Mapping[K, Collection[str]]) -> dict[K, int]:
        """For each of ``unit_sets`` (a standard's learnable parts), the answers that practised
        any of its units, each once: the units' attempts, less the repeats of answers that
        practised several of them. A profile asks it of every standard: the answers that practised
        several units are indexed by unit once, and each set reads only those that touch it."""
        touching: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for group, answers in self.shared.items():
            for unit in group:
                touching.setdefault(unit, []).append((group, answers))
        out: dict[K, int] = {}
        for key, units in unit_sets.items():
            total = sum(self.get(u).attempts for u in units)
            seen: set[tuple[str, ...]] = set()
            for unit in units:
                for group, answers in touching.get(unit, ()):
                    if group not in seen:
                        seen.add(group)
                        inside = sum(1 for u in group if u in units)
                        if inside > 1:
                            total -= answers * (inside - 1)
            out[key] = total
        return out

    def stalled(self, window: int, failure_share: float = 0.7, *, pace: bool = True) -> bool:
        """Learning has stalled: nothing mastered for ``window`` activities (or, with ``pace``, for
        a learner who has mastered several standards, twice their own pace per standard, if
        longer), and most of the last ``window`` failed. A slow learner on a right graph is not
        taken for a stall."""
        if window <= 0:
            return False
        done = sum(1 for p in self.units.values() if p.mastered_by in ("evidence", "test-out"))
        pace = pace and done >= 2
        pace_per_standard = self.last_mastery / done if pace else 0.0
        if self.activities - self.last_mastery < max(window, 2.0 * pace_per_standard):
            return False
        recent = self.outcomes[-window:]
        return len(recent) >= window and sum(1 for r in recent if r < 0.5) >= failure_share * window

    def get(self, unit: str) -> StandardProgress:
        return self.units.get(unit, _EMPTY)

    @property
    def mastered(self) -> frozenset[str]:
        return frozenset(u for u, p in self.units.items() if p.mastered)

    def to_json(self) -> dict:
        """Plain data for a store: one row per unit (the fields named once), since it is written
        with every event and read with every request."""
        return {
            "fields": list(_PROGRESS_FIELDS),
            "units": {u: p.to_row() for u, p in self.units.items()},
            "recent_items": list(self.recent_items),
            "activities": self.activities,
            "last_mastery": self.last_mastery,
            "outcomes": list(self.outcomes),
            **({"shared": [[list(g), n] for g, n in self.shared.items()]} if self.shared else {}),
            **(
                {"days": [[d, n] for d, n in self.days.items()], "started": self.started}
                if self.started is not None
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Progress:
        """Reads what :meth:`to_json` wrote, also with another field list (fields added later take
        their defaults) or one object per unit (the earlier form)."""
        raw = data.get("units", {})
        fields_ = tuple(data.get("fields", ()))
        if fields_ == _PROGRESS_FIELDS:
            units = {u: StandardProgress.from_row(row) for u, row in raw.items()}
        else:
            known = set(_PROGRESS_FIELDS)
            units = {}
            for u, row in raw.items():
                values = dict(zip(fields_, row)) if isinstance(row, (list, tuple)) else dict(row)
                values = {k: v for k, v in values.items() if k in known}
                values["recent"] = tuple(values.get("recent", ()))
                units[u] = StandardProgress(**values)
        return cls(
            units,
            list(data.get("recent_items", [])),
            int(data.get("activities", 0)),
            int(data.get("last_mastery", 0)),
            [float(x) for x in data.get("outcomes", ())],
            {tuple(group): int(n) for group, n in data.get("shared", ())},
            {int(d): int(n) for d, n in data.get("days", ())},
            None if data.get("started") is None else float(data["started"]),
        )


_EMPTY = StandardProgress()
_PROGRESS_FIELDS = tuple(f.name for f in fields(StandardProgress))
_RECENT = _PROGRESS_FIELDS.index("recent")
_ROW = attrgetter(*_PROGRESS_FIELDS)  # the fields in one call (written with every event)


def mark_mastered(progress: Progress, units: Iterable[str], time: float, by: str = "placement") -> None:
    """Mark units mastered without practice evidence (placement); they are re-verified first."""
    for unit in units:
        current = progress.get(unit)
        if not current.mastered:
            progress.units[unit] = replace(current, mastered_at=time, mastered_by=by, last_review=time)


def record_attempt(
    progress: Progress,
    attempt: Attempt,
    mastery: Mapping[str, float],
    prereqs: Mapping[str, tuple[str, ...]],
    config: PlannerConfig,
    checkable: Container[str] | None = None,
) -> list[str]:
    """Fold one attempt into ``progress`` (in place); ``mastery`` is the model's P(mastered)
    *after* the attempt. ``checkable``: the units that have a mastery-check item (None: all);
    with ``require_check``, only those need a passed check to be mastered, so a catalog without
    checks (a content platform's, usually) does not stall mastery, and for ``check_wait``
    successes in a row past the streak at most: a check the learner is never given does not
    stall it either. Returns human-readable status
    changes ("mastered 3.NF.A.1", ...)."""
    changes: list[str] = []
    progress.activities += 1
    if len(attempt.units) > 1:
        progress.shared[attempt.units] = progress.shared.get(attempt.units, 0) + 1
    progress.note_recent(attempt.item_id, config.novelty_window)
    progress.outcomes.append(float(attempt.correct))
    del progress.outcomes[: -max(1, config.stall_after)]
    per_day = progress.days
    today = math.floor(attempt.time / DAY)
    per_day[today] = per_day.get(today, 0) + 1
    if len(per_day) > PACE_WINDOW_DAYS:  # the days before the window of the latest are no pace
        latest = max(per_day)
        for gone in [d for d in per_day if d <= latest - PACE_WINDOW_DAYS]:
            del per_day[gone]
    if progress.started is None or attempt.time < progress.started:
        progress.started = attempt.time
    ok = attempt.success
    unmastered = [u for u in attempt.units if not progress.get(u).mastered]
    for unit in attempt.units:
        old = progress.get(unit)
        if not ok and old.mastered and unmastered:
            # a failed item on several standards is blamed on the ones not mastered yet
            progress.units[unit] = replace(
                old, attempts=old.attempts + 1, last_time=attempt.time, last_activity=progress.activities
            )
            continue
        new = replace(
            old,
            attempts=old.attempts + 1,
            successes=old.successes + ok,
            streak=old.streak + 1 if ok else 0,
            failures_in_a_row=0 if ok else old.failures_in_a_row + 1,
            checked=(old.checked or attempt.mastery_check) if ok else False,
            recent=(*old.recent, float(attempt.correct))[-RECENT:],
            first_time=old.first_time if old.first_time is not None else attempt.time,
            last_time=attempt.time,
            last_activity=progress.activities,
        )
        p = mastery.get(unit, 0.0)
        if new.mastered:
            failed_check = attempt.mastery_check and not ok
            if failed_check or p < config.reopen_threshold or new.failures_in_a_row >= config.struggle_failures:
                new = replace(
                    new,
                    mastered_at=None,
                    mastered_by=None,
                    verified_at=None,
                    reopened=new.reopened + 1,
                    reviews=0,
                    checked=False,
                )
                changes.append(f"reopened {unit}")
            elif ok:
                new = replace(
                    new,
                    last_review=attempt.time,
                    reviews=new.reviews + 1,
                    verified_at=attempt.time if attempt.mastery_check else new.verified_at,
                )
        elif (
            p >= config.mastery_threshold
            and new.streak >= config.streak_required
            and (
                new.checked
                or not config.require_check
                or (checkable is not None and unit not in checkable)
                or 0 < config.check_wait <= new.streak - config.streak_required
            )
        ):
            new = replace(
                new,
                mastered_at=attempt.time,
                mastered_by="evidence",
                verified_at=None,
                last_review=attempt.time,
                reviews=0,
            )
            changes.append(f"mastered {unit}")
            progress.last_mastery = progress.activities
        elif ok and attempt.mastery_check and new.attempts == 1 and p >= config.test_out_threshold:
            # tested out: a first attempt that is a passed check on a standard already likely known
            new = replace(
                new,
                mastered_at=attempt.time,
                mastered_by="test-out",
                verified_at=None,
                last_review=attempt.time,
                reviews=0,
            )
            changes.append(f"tested out of {unit}")
            progress.last_mastery = progress.activities
        progress.units[unit] = new
        if ok:
            _implicit_review(progress, unit, attempt.time, prereqs, config.implicit_review_share)
    return changes


def _implicit_review(
    progress: Progress, unit: str, time: float, prereqs: Mapping[str, tuple[str, ...]], share: float
) -> None:
    """Success on a standard moves its mastered prerequisites' last review part of the way to now."""
    for pre in prereqs.get(unit, ()):
        current = progress.units.get(pre)
        if current is not None and current.mastered and current.last_review is not None and time > current.last_review:
            progress.units[pre] = replace(
                current, last_review=current.last_review + share * (time - current.last_review)
            )
