"""Individual Rotation: time-boxed playlists for one learner and rotations for a class.

A learner's playlist fills the session with the planner's best candidates in order, at most
``max_per_standard`` activities per standard (pinned work excepted), rotating modalities, each
activity with up to ``k`` alternatives that fit the same slot (student choice).

A class rotation divides the session into blocks. The teacher's **small groups** gather learners
who need the same standard (struggling learners first), one group per teacher per block: the
standard shared by the most learners goes first, a learner may be gathered for any of their next
few standards, a group that fits the capacity meets once, a larger one is split into even groups
in different blocks, and a group of one is formed only for a struggling learner nobody shares a
need with. Every other learner goes, block by block, to the station (modality) of their best
candidate that still has a free seat, so station capacities always hold; what a block has left
(an item shorter than the block, no seat anywhere) is independent practice on the learner's best
standard, so nobody is idle. Mastery checks and test-outs stay within ``max_check_share`` of each
learner's activities.

A learner nothing places yet (no grade and no answer, or an entry diagnostic not finished: the
context's ``entry_diagnostic``) starts with the **entry diagnostic**, for
``entry_diagnostic_minutes``, at the assessment station: a playlist's first activity; in a rotation
the first whole blocks with a free seat at that station, and no small group, since their needs are
a guess. What else is planned for them was planned without it: plan again once it is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from engine.catalog import Item, Modality
from engine.planner.context import PlanContext, TeacherFlag
from engine.planner.scoring import Candidate, Ranked, rank_candidates

__all__ = [
    "ENTRY_DIAGNOSTIC",
    "MIN_BLOCK_MINUTES",
    "Activity",
    "Playlist",
    "Rotation",
    "SmallGroup",
    "plan_playlist",
    "plan_rotation",
    "session_blocks",
]

#: the shortest block of a class rotation (and so the shortest rotation session): a station
#: shorter than that holds no activity, and it bounds a session's blocks (96 in 8 hours)
MIN_BLOCK_MINUTES = 5.0

REPEAT_MODALITY_PENALTY = 0.5
#: the kinds of activity that check mastery rather than teach (kept within ``max_check_share``)
CHECK_KINDS = frozenset({"test_out", "recheck", "reverify"})
INDEPENDENT_PRACTICE = "independent_practice"
#: the kind of the activity that is an entry diagnostic (its item: the first question it asks)
ENTRY_DIAGNOSTIC = "entry_diagnostic"
#: how many of a learner's next standards may bring them to a small group
GROUP_CHOICES = 3


def checks_left(activities: Sequence[Activity], share: float) -> bool:
    """Whether one more mastery check keeps the checks within ``share`` of the activities (the
    first activity may always be one)."""
    checks = sum(1 for a in activities if a.kind in CHECK_KINDS)
    return checks + 1 <= max(1.0, share * (len(activities) + 1))


@dataclass(frozen=True)
class Activity:
    start_minute: float
    minutes: float
    modality: str
    item: Item
    standard: str
    kind: str
    p_success: float | None
    reasons: tuple[str, ...]
    alternatives: tuple[Candidate, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class Playlist:
    session_minutes: float
    activities: list[Activity]
    free_minutes: float
    flags: list[TeacherFlag]
    route: list[str]
    #: with no activity, why: ``(code, text)`` (the codes of ``PlanResult.why_empty``, or none_fits)
    empty: tuple[str, str] | None = None


@dataclass(frozen=True)
class SmallGroup:
    id: str
    standard: str
    item: Item
    learners: tuple[str, ...]
    block: int
    start_minute: float
    minutes: float
    reason: str


@dataclass(frozen=True)
class Rotation:
    session_minutes: float
    block_minutes: float
    playlists: dict[str, Playlist]
    groups: list[SmallGroup]
    station_load: list[dict[str, int]] = field(default_factory=list)  # learners per modality, per block
    #: learners nothing places yet whom the assessment station had no seat for, for as long as
    #: the entry diagnostic takes, in this session (their plan goes on without it)
    diagnostic_unseated: tuple[str, ...] = ()
    #: the session's first blocks, already done when this was planned (nothing is planned in them)
    blocks_done: int = 0


def _pick(
    ranked: Sequence[Candidate],
    window: float,
    used_items: set[str],
    per_standard: dict[str, int],
    max_per_standard: int,
    previous: str | None,
    allow=lambda c: True,
    checks_left: bool = True,
) -> Candidate | None:
    best, best_score = None, float("-inf")
    for cand in ranked:
        if cand.item.id in used_items or cand.item.duration_minutes > window or not allow(cand):
            continue
        if cand.kind != "pinned" and per_standard.get(cand.standard, 0) >= max_per_standard:
            continue
        if cand.kind in CHECK_KINDS and not checks_left:
            continue
        score = cand.score - (REPEAT_MODALITY_PENALTY if cand.item.modality == previous else 0.0)
        if cand.kind == "pinned":
            score += 1e6  # overrides always win
        if score > best_score:
            best, best_score = cand, score
    return best


def _alternatives(
    ranked: Sequence[Candidate], chosen: Candidate, window: float, used: set[str], k: int
) -> tuple[Candidate, ...]:
    alts = [
        c
        for c in ranked
        if c.standard == chosen.standard
        and c.item.id != chosen.item.id
        and c.item.id not in used
        and c.item.duration_minutes <= window
    ]
    return tuple(alts[:k])


def _entry(ctx: PlanContext) -> tuple[str, Item] | None:
    """The entry diagnostic's next question when the plan is to start with it: the learner is
    unplaced, the diagnostic is given time, and the room has an assessment station."""
    if ctx.entry_diagnostic is None or ctx.config.entry_diagnostic_minutes <= 0:
        return None
    if ctx.modalities is not None and Modality.ASSESSMENT not in ctx.modalities:
        return None
    return ctx.entry_diagnostic()


def _diagnostic(start: float, minutes: float, question: tuple[str, Item]) -> Activity:
    standard, item = question
    return Activity(
        start,
        minutes,
        Modality.ASSESSMENT.value,
        item,
        standard,
        ENTRY_DIAGNOSTIC,
        None,
        (
            "nothing places them yet (no grade and no answer, or an entry diagnostic not finished): the entry "
            f"diagnostic asks about {standard} first and stops once it is confident where they stand",
            "the rest of their plan was made without it: plan again once it is done",
        ),
    )


def plan_playlist(
    ctx: PlanContext,
    session_minutes: float = 60,
    k_alternatives: int = 2,
    ranked: tuple[Ranked, list[TeacherFlag], list[str]] | None = None,
) -> Playlist:
    """An ordered, time-boxed playlist for one learner (start minute, minutes, modality, item,
    standard, reasons and alternatives for each activity)."""
    if session_minutes <= 0:
        raise ValueError(f"session_minutes must be > 0, got {session_minutes}")
    ranking, flags, route = ranked if ranked is not None else rank_candidates(ctx)
    candidates = ranking.all()  # every pick reads them all: built at once, then read as a list
    activities: list[Activity] = []
    used: set[str] = set()
    per_standard: dict[str, int] = {}
    t, previous = 0.0, None
    entry = _entry(ctx)
    if entry is not None:
        t = min(ctx.config.entry_diagnostic_minutes, session_minutes)
        activities.append(_diagnostic(0.0, t, entry))
        used.add(entry[1].id)
        previous = Modality.ASSESSMENT.value
    while True:
        window = session_minutes - t
        cand = _pick(
            candidates,
            window,
            used,
            per_standard,
            ctx.config.max_per_standard,
            previous,
            checks_left=checks_left(activities, ctx.config.max_check_share),
        )
        if cand is None:
            break
        alts = _alternatives(candidates, cand, window, used | {cand.item.id}, k_alternatives)
        activities.append(
            Activity(
                t,
                cand.item.duration_minutes,
                cand.item.modality.value,
                cand.item,
                cand.standard,
                cand.kind,
                cand.p_success,
                cand.reasons,
                alts,
            )
        )
        used.add(cand.item.id)
        per_standard[cand.standard] = per_standard.get(cand.standard, 0) + 1
        t += cand.item.duration_minutes
        previous = cand.item.modality.value
    return Playlist(
        session_minutes,
        activities,
        session_minutes - t,
        flags,
        route,
        _why_empty(activities, ranking, session_minutes),
    )


def _why_empty(activities: Sequence[Activity], candidates: Ranked, minutes: float) -> tuple[str, str] | None:
    """Why a playlist has no activity: what the plan had nothing for (``Ranked.why_empty``), or
    that nothing it had fits in the time."""
    if activities:
        return None
    if not candidates:
        return candidates.why_empty
    return "none_fits", f"no activity of what this learner is ready for fits in {minutes:g} minutes"


# ---------------------------------------------------------------------------- class rotation
def session_blocks(session_minutes: float, block_minutes: float) -> int:
    """The whole blocks a session holds (a block longer than the session is the session)."""
    return int(session_minutes // min(block_minutes, session_minutes))


def _just_taught(ctx: PlanContext) -> frozenset[str]:
    """The standards of the teacher's small-group lesson that was the learner's last activity
    (none when it was something else)."""
    recent = ctx.progress.recent_items
    if not recent or recent[-1] not in ctx.index.catalog:
        return frozenset()
    item = ctx.index.catalog[recent[-1]]
    return frozenset(ctx.index.item_units.get(item.id, ())) if item.modality is Modality.SMALL_GROUP else frozenset()


def _needs(
    ranked: Sequence[Candidate],
    flags: list[TeacherFlag],
    group_items: Mapping[str, Item],
    just_taught: frozenset[str] = frozenset(),
) -> list[tuple[str, int, str]]:
    """The standards this learner could work on with the teacher, most needed first:
    (standard, priority, reason); priority 2 for a struggle, 1 for a next standard to learn.

    A standard the teacher has just taught the learner in a small group (``just_taught``) is
    practised before the teacher teaches it to them again, unless they struggle on it: planned
    again after each block, half the groups were the block before's again, and simulated classes
    learned more without those repeats (``docs/benchmarks/classroom.md``)."""
    out: dict[str, tuple[str, int, str]] = {}
    for flag in flags:
        target = flag.remediation or flag.standard
        if target in group_items and target not in out:
            out[target] = (target, 2, f"struggling: {flag.reason}")
    learn = 0
    for cand in ranked:
        if learn >= GROUP_CHOICES:
            break
        if cand.kind in ("learn", "remediation", "pinned") and cand.standard in group_items:
            learn += 1
            out.setdefault(cand.standard, (cand.standard, 1, "the next standard they are ready to learn"))
    return [need for need in out.values() if need[1] > 1 or need[0] not in just_taught]


def _form_groups(
    needs: Mapping[str, list[tuple[str, int, str]]],
    group_items: Mapping[str, Item],
    n_blocks: int,
    teachers: int,
    block_minutes: float,
    group_capacity: int,
) -> list[SmallGroup]:
    """Greedy: the standard with the most urgent and most numerous unplaced learners first; a
    group that fits the capacity meets once, a larger one is split evenly over blocks; a group of
    one only for a struggling learner whose need nobody else shares."""
    slots = [(b, t) for b in range(n_blocks) for t in range(teachers)]
    placed: set[str] = set()
    groups: list[SmallGroup] = []
    while slots:
        wanting: dict[str, list[tuple[int, int, str, str]]] = {}
        for lid, wants in needs.items():
            if lid in placed:
                continue
            for rank, (standard, priority, reason) in enumerate(wants):
                wanting.setdefault(standard, []).append((priority, rank, lid, reason))
        options = [
            (standard, members)
            for standard, members in wanting.items()
            if len(members) >= 2 or any(p == 2 for p, _, _, _ in members)
        ]
        if not options:
            break
        standard, members = max(
            options,
            key=lambda o: (  # struggling learners weigh double; then the nearest needs; then the code
                sum(sorted((p for p, _, _, _ in o[1]), reverse=True)[: group_capacity * len(slots)]),
                -sum(r for _, r, _, _ in o[1]) / len(o[1]),
                o[0],
            ),
        )
        members.sort(key=lambda m: (-m[0], m[1], m[2]))
        blocks_free = sorted({b for b, _ in slots})
        n_groups = min(math.ceil(len(members) / group_capacity), len(blocks_free))
        members = members[: n_groups * group_capacity]
        size, extra = divmod(len(members), n_groups)
        first = 0
        for g in range(n_groups):
            chunk = members[first : first + size + (1 if g < extra else 0)]
            first += len(chunk)
            block = blocks_free[g]
            slots.remove(next(slot for slot in slots if slot[0] == block))
            reason = "; ".join(dict.fromkeys(r for _, _, _, r in chunk))
            groups.append(
                SmallGroup(
                    f"g{len(groups) + 1}",
                    standard,
                    group_items[standard],
                    tuple(lid for _, _, lid, _ in chunk),
                    block,
                    block * block_minutes,
                    block_minutes,
                    f"{len(chunk)} learner(s) need {standard} ({reason})",
                )
            )
            placed.update(lid for _, _, lid, _ in chunk)
    return groups


def plan_rotation(
    contexts: Mapping[str, PlanContext],
    session_minutes: float = 60,
    block_minutes: float = 20,
    capacities: Mapping[str, int] | None = None,
    group_capacity: int = 6,
    teachers: int = 1,
    k_alternatives: int = 2,
    blocks_done: int = 0,
) -> Rotation:
    """Playlists for every learner plus the teacher's small groups.

    ``capacities`` gives seats per station (modality) in each block; modalities not listed are
    unlimited, except tutoring (1 seat) and small_group, which is only used by teacher groups.
    ``blocks_done``: the session's first blocks are over, plan the rest from what the learners
    did in them (times and blocks stay the session's). A plan made at the start of the day is
    stale once a block is over: planned again at each block, simulated classes learned a third
    more or better in four weeks (``docs/benchmarks/classroom.md``).
    """
    if not MIN_BLOCK_MINUTES <= block_minutes <= session_minutes:
        raise ValueError(
            f"need {MIN_BLOCK_MINUTES:g} <= block_minutes <= session_minutes, got {block_minutes} and {session_minutes}"
        )
    n_blocks = session_blocks(session_minutes, block_minutes)
    if not 0 <= blocks_done < n_blocks:
        raise ValueError(f"blocks_done: the session has {n_blocks} block(s), so 0 to {n_blocks - 1}, got {blocks_done}")
    if blocks_done:
        rest = (n_blocks - blocks_done) * block_minutes
        later = plan_rotation(contexts, rest, block_minutes, capacities, group_capacity, teachers, k_alternatives)
        return _after(later, blocks_done)
    caps = {"tutoring": 1, **(capacities or {})}
    ranked = {lid: rank_candidates(ctx) for lid, ctx in contexts.items()}
    # each learner's candidates, all of them built once and then read as a list: every pick of
    # every block reads them all
    lists = {lid: cands.all() for lid, (cands, _, _) in ranked.items()}
    solo = {lid: _SoloPractice(lists[lid], contexts[lid], ranked[lid][2]) for lid in contexts}
    load: list[dict[str, int]] = [{} for _ in range(n_blocks)]

    # -- entry diagnostics: the first whole blocks with a seat at the assessment station --------
    entries = {lid: q for lid, ctx in contexts.items() if (q := _entry(ctx)) is not None}
    diagnosing = _seat_diagnostics(entries, contexts, n_blocks, block_minutes, caps, load)

    # -- small groups ------------------------------------------------------------------------
    group_items: dict[str, Item] = {}
    for cands in lists.values():
        for cand in cands:
            if cand.item.modality is Modality.SMALL_GROUP and cand.item.duration_minutes <= block_minutes:
                group_items.setdefault(cand.standard, cand.item)
    needs = {  # a learner nothing places yet is not grouped on a guess
        lid: [] if lid in entries else _needs(lists[lid], flags, group_items, _just_taught(contexts[lid]))
        for lid, (_, flags, _) in ranked.items()
    }
    groups = _form_groups(needs, group_items, n_blocks, teachers, block_minutes, group_capacity)
    in_group = {lid: group for group in groups for lid in group.learners}

    # -- stations, block by block -------------------------------------------------------------
    plans: dict[str, list[Activity]] = {lid: [] for lid in contexts}
    used: dict[str, set[str]] = {lid: set() for lid in contexts}
    per_standard: dict[str, dict[str, int]] = {lid: {} for lid in contexts}
    order = sorted(contexts, key=lambda lid: (-len(ranked[lid][1]), lid))  # struggling learners choose first
    for block in range(n_blocks):
        start = block * block_minutes
        for group in groups:
            if group.block == block:
                load[block][Modality.SMALL_GROUP.value] = load[block].get(Modality.SMALL_GROUP.value, 0) + len(
                    group.learners
                )
        for lid in order:
            joined = in_group.get(lid)
            if joined is not None and joined.block == block:
                found = next((c for c in lists[lid] if c.item.id == joined.item.id), None)
                plans[lid].append(
                    Activity(
                        start,
                        block_minutes,
                        Modality.SMALL_GROUP.value,
                        joined.item,
                        joined.standard,
                        found.kind if found else "learn",
                        found.p_success if found else None,
                        (f"small group {joined.id} with the teacher: {joined.reason}",),
                        (),
                        joined.id,
                    )
                )
                used[lid].add(joined.item.id)
                continue
            seat = diagnosing.get(lid)
            if seat is not None and seat[0] <= block < seat[0] + seat[1]:
                first, blocks, minutes = seat
                if block == first:
                    plans[lid].append(_diagnostic(start, minutes, entries[lid]))
                    used[lid].add(entries[lid][1].id)
                end = first * block_minutes + minutes
                if block == first + blocks - 1 and end < start + block_minutes:
                    _practise_rest(
                        plans[lid], solo[lid], used[lid], end, start + block_minutes - end, load[block], True
                    )
                continue
            _fill_block(
                lid,
                lists[lid],
                contexts[lid],
                start,
                block_minutes,
                caps,
                load[block],
                plans[lid],
                used[lid],
                per_standard[lid],
                k_alternatives,
                solo[lid],
            )
    playlists = {}
    for lid in contexts:
        busy = sum(a.minutes for a in plans[lid])
        playlists[lid] = Playlist(
            n_blocks * block_minutes,
            plans[lid],
            n_blocks * block_minutes - busy,
            ranked[lid][1],
            ranked[lid][2],
            _why_empty(plans[lid], ranked[lid][0], block_minutes),
        )
    unseated = tuple(sorted(set(entries) - set(diagnosing)))
    return Rotation(n_blocks * block_minutes, block_minutes, playlists, groups, load, unseated)


def _after(rest: Rotation, done: int) -> Rotation:
    """``rest``, planned for the blocks after the session's ``done`` first ones, in the
    session's time: every activity and group that many blocks later."""
    shift = done * rest.block_minutes
    playlists = {
        lid: replace(p, activities=[replace(a, start_minute=a.start_minute + shift) for a in p.activities])
        for lid, p in rest.playlists.items()
    }
    groups = [replace(g, block=g.block + done, start_minute=g.start_minute + shift) for g in rest.groups]
    load: list[dict[str, int]] = [{} for _ in range(done)] + rest.station_load
    return replace(
        rest,
        session_minutes=rest.session_minutes + shift,
        playlists=playlists,
        groups=groups,
        station_load=load,
        blocks_done=done,
    )


def _fill_block(
    lid: str,
    ranked: Sequence[Candidate],
    ctx: PlanContext,
    start: float,
    block_minutes: float,
    caps: Mapping[str, int],
    load: dict[str, int],
    plan: list[Activity],
    used: set[str],
    per_standard: dict[str, int],
    k: int,
    solo: _SoloPractice,
) -> None:
    """Seat the learner at the best station with a free seat and fill the block with its items;
    the minutes left (or the whole block, when no station has a seat) are independent practice."""

    def seat_free(cand: Candidate) -> bool:
        modality = cand.item.modality  # a StrEnum: it is its value as a key
        if modality is Modality.SMALL_GROUP:
            return False  # the teacher's table is for groups
        return modality not in caps or load.get(modality, 0) < caps[modality]

    share = ctx.config.max_check_share
    previous = plan[-1].modality if plan else None
    first = _pick(
        ranked,
        block_minutes,
        used,
        per_standard,
        ctx.config.max_per_standard,
        previous,
        seat_free,
        checks_left(plan, share),
    )
    t = start
    if first is not None:
        station = first.item.modality.value
        load[station] = load.get(station, 0) + 1
        cand: Candidate | None = first
        while cand is not None:
            window = start + block_minutes - t
            alts = _alternatives(
                [c for c in ranked if c.item.modality == station], cand, window, used | {cand.item.id}, k
            )
            plan.append(
                Activity(
                    t,
                    cand.item.duration_minutes,
                    station,
                    cand.item,
                    cand.standard,
                    cand.kind,
                    cand.p_success,
                    cand.reasons,
                    alts,
                )
            )
            used.add(cand.item.id)
            per_standard[cand.standard] = per_standard.get(cand.standard, 0) + 1
            t += cand.item.duration_minutes
            window = start + block_minutes - t
            cand = _pick(
                ranked,
                window,
                used,
                per_standard,
                ctx.config.max_per_standard,
                None,
                lambda c, station=station: c.item.modality == station,
                checks_left(plan, share),
            )
    left = start + block_minutes - t
    if left > 0:
        _practise_rest(plan, solo, used, t, left, load, first is not None)


def _practise_rest(
    plan: list[Activity], solo: _SoloPractice, used: set[str], t: float, left: float, load: dict[str, int], seated: bool
) -> None:
    """Independent practice from minute ``t`` for the ``left`` minutes of a block that nothing
    else fills (``seated``: the learner has a seat elsewhere in the block, so is not counted)."""
    practice = solo.pick(used)
    if practice is None:
        return  # nothing at all to practise
    item, standard, p_success = practice
    used.add(item.id)  # the next gap practises something else when it can
    if not seated:
        load[INDEPENDENT_PRACTICE] = load.get(INDEPENDENT_PRACTICE, 0) + 1
    plan.append(
        Activity(
            t,
            left,
            INDEPENDENT_PRACTICE,
            item,
            standard,
            "practice",
            p_success,
            (
                f"independent practice on {standard} for the {left:g} minute(s) left in the block"
                + ("" if seated else " (no free seat at a station)"),
            ),
        )
    )


def _seat_diagnostics(
    entries: Mapping[str, tuple[str, Item]],
    contexts: Mapping[str, PlanContext],
    n_blocks: int,
    block_minutes: float,
    caps: Mapping[str, int],
    load: list[dict[str, int]],
) -> dict[str, tuple[int, int, float]]:
    """Each learner's entry diagnostic in the first whole blocks with a seat at the assessment
    station in each (counted in ``load``): learner -> (first block, blocks, minutes). A learner
    the station has no room for in this session is left out (their plan goes on without it)."""
    station = Modality.ASSESSMENT.value
    seats = caps.get(station)
    seated: dict[str, tuple[int, int, float]] = {}
    for lid in sorted(entries):
        minutes = min(contexts[lid].config.entry_diagnostic_minutes, n_blocks * block_minutes)
        blocks = min(n_blocks, max(1, math.ceil(minutes / block_minutes - 1e-9)))
        for first in range(n_blocks - blocks + 1):
            span = range(first, first + blocks)
            if seats is None or all(load[b].get(station, 0) < seats for b in span):
                for b in span:
                    load[b][station] = load[b].get(station, 0) + 1
                seated[lid] = (first, blocks, minutes)
                break
    return seated


class _SoloPractice:
    """What one learner practises alone in the gaps of a plan (:meth:`pick`). Everything but the
    items already used is fixed over the plan, so it is worked out at the first gap, not at
    each: the practice candidates, the standard to fall back on, and each item's P(success)."""

    SOLO = (Modality.SMALL_GROUP, Modality.TUTORING, Modality.ASSESSMENT)

    def __init__(self, ranked: Sequence[Candidate], ctx: PlanContext, route: Sequence[str]):
        self.ranked, self.ctx, self.route = ranked, ctx, route
        self.practice = [c for c in ranked if c.kind not in CHECK_KINDS and c.item.modality not in self.SOLO]
        self._p: dict[str, float] = {}

    def pick(self, used: set[str]) -> tuple[Item, str, float | None] | None:
        """Their best teaching candidate that is practice or reading (not a check, not the
        teacher's table), an unused one first; when every candidate is a check, a practice item
        on the standard checked, or on a standard of the route whose prerequisites are known.
        (item, standard, P)."""
        if self.practice:
            best = max(
                self.practice,
                key=lambda c: (c.item.id not in used, c.item.modality is Modality.ONLINE_PRACTICE, c.score),
            )
            return best.item, best.standard, best.p_success
        if self.fallback is None:
            return None
        standard, items = self.fallback
        item = max(items, key=lambda i: (i.id not in used, i.modality is Modality.ONLINE_PRACTICE, i.id))
        p = self._p.get(item.id)
        if p is None:
            p = self._p[item.id] = float(self.ctx.predict([item])[0])
        return item, standard, p

    @cached_property
    def fallback(self) -> tuple[str, list[Item]] | None:
        """The first standard checked, or of the route with its prerequisites known, that has
        items to practise alone, with those items (read only when every candidate is a check)."""
        ctx = self.ctx
        known = ctx.progress.mastered
        ready = [
            u
            for u in self.route
            if all(
                p in known or ctx.mastery.get(p, 0.0) >= ctx.config.likely_known for p in ctx.index.prereqs.get(u, ())
            )
        ]
        for standard in dict.fromkeys([*(c.standard for c in self.ranked), *ready]):
            items = [
                i
                for i in ctx.index.items_for.get(standard, ())
                if i.modality not in self.SOLO
                and (ctx.available is None or i.id in ctx.available)
                and (ctx.modalities is None or i.modality in ctx.modalities)
            ]
            if items:
                return standard, items
        return None
