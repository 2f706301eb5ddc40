"""Individual Rotation: time-boxed playlists for one learner and rotations for a class.

A learner's playlist fills the session with the planner's best candidates in order, at most
``max_per_standard`` activities per standard (pinned work excepted), rotating modalities, each
activity with up to ``k`` alternatives that fit the same slot (student choice).

A class rotation divides the session into blocks. The teacher's **small groups** gather learners
who need the same standard (struggling learners first), up to the group capacity, one group per
teacher per block; every other learner goes, block by block, to the station (modality) of their
best candidate that still has a free seat, so station capacities always hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.catalog import Item, Modality
from engine.planner.context import PlanContext, TeacherFlag
from engine.planner.scoring import Candidate, rank_candidates

__all__ = ["Activity", "Playlist", "Rotation", "SmallGroup", "plan_playlist", "plan_rotation"]

REPEAT_MODALITY_PENALTY = 0.5


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


def _pick(
    ranked: Sequence[Candidate],
    window: float,
    used_items: set[str],
    per_standard: dict[str, int],
    max_per_standard: int,
    previous: str | None,
    allow=lambda c: True,
) -> Candidate | None:
    best, best_score = None, float("-inf")
    for cand in ranked:
        if cand.item.id in used_items or cand.item.duration_minutes > window or not allow(cand):
            continue
        if cand.kind != "pinned" and per_standard.get(cand.standard, 0) >= max_per_standard:
            continue
        score = cand.score - (REPEAT_MODALITY_PENALTY if cand.item.modality.value == previous else 0.0)
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


def plan_playlist(
    ctx: PlanContext,
    session_minutes: float = 60,
    k_alternatives: int = 2,
    ranked: tuple[list[Candidate], list[TeacherFlag], list[str]] | None = None,
) -> Playlist:
    """An ordered, time-boxed playlist for one learner (start minute, minutes, modality, item,
    standard, reasons and alternatives for each activity)."""
    if session_minutes <= 0:
        raise ValueError(f"session_minutes must be > 0, got {session_minutes}")
    candidates, flags, route = ranked if ranked is not None else rank_candidates(ctx)
    activities: list[Activity] = []
    used: set[str] = set()
    per_standard: dict[str, int] = {}
    t, previous = 0.0, None
    while True:
        window = session_minutes - t
        cand = _pick(candidates, window, used, per_standard, ctx.config.max_per_standard, previous)
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
    return Playlist(session_minutes, activities, session_minutes - t, flags, route)


# ---------------------------------------------------------------------------- class rotation
def _need(
    ranked: list[Candidate], flags: list[TeacherFlag], group_items: Mapping[str, Item]
) -> tuple[str, int, str] | None:
    """The standard this learner most needs the teacher for: (standard, priority, reason)."""
    for flag in flags:
        target = flag.remediation or flag.standard
        if target in group_items:
            return target, 2, f"struggling: {flag.reason}"
    for cand in ranked:
        if cand.kind in ("learn", "remediation", "pinned") and cand.standard in group_items:
            return cand.standard, 1, f"next standard to learn: {cand.standard}"
    return None


def plan_rotation(
    contexts: Mapping[str, PlanContext],
    session_minutes: float = 60,
    block_minutes: float = 20,
    capacities: Mapping[str, int] | None = None,
    group_capacity: int = 6,
    teachers: int = 1,
    k_alternatives: int = 2,
) -> Rotation:
    """Playlists for every learner plus the teacher's small groups.

    ``capacities`` gives seats per station (modality) in each block; modalities not listed are
    unlimited, except tutoring (1 seat) and small_group, which is only used by teacher groups.
    """
    if block_minutes <= 0 or session_minutes < block_minutes:
        raise ValueError(f"need 0 < block_minutes <= session_minutes, got {block_minutes} and {session_minutes}")
    n_blocks = int(session_minutes // block_minutes)
    caps = {"tutoring": 1, **(capacities or {})}
    ranked = {lid: rank_candidates(ctx) for lid, ctx in contexts.items()}

    # -- small groups ------------------------------------------------------------------------
    group_items: dict[str, Item] = {}
    for cands, _, _ in ranked.values():
        for cand in cands:
            if cand.item.modality is Modality.SMALL_GROUP and cand.item.duration_minutes <= block_minutes:
                group_items.setdefault(cand.standard, cand.item)
    needs: dict[str, list[tuple[int, str, str]]] = {}
    for lid, (cands, flags, _) in ranked.items():
        need = _need(cands, flags, group_items)
        if need is not None:
            needs.setdefault(need[0], []).append((need[1], lid, need[2]))
    buckets = sorted(needs.items(), key=lambda kv: (-max(p for p, _, _ in kv[1]), -len(kv[1]), kv[0]))
    groups: list[SmallGroup] = []
    slots = [(b, t) for b in range(n_blocks) for t in range(teachers)]
    in_group: dict[str, SmallGroup] = {}
    for standard, members in buckets:
        members.sort(key=lambda m: (-m[0], m[1]))
        urgent = any(p == 2 for p, _, _ in members)
        if len(members) < 2 and not urgent:
            continue  # teacher time goes to shared needs or struggling learners
        for first in range(0, len(members), group_capacity):
            if not slots:
                break
            chunk = members[first : first + group_capacity]
            block, teacher = slots.pop(0)
            reason = "; ".join(dict.fromkeys(r for _, _, r in chunk))
            group = SmallGroup(
                f"g{len(groups) + 1}",
                standard,
                group_items[standard],
                tuple(lid for _, lid, _ in chunk),
                block,
                block * block_minutes,
                block_minutes,
                f"{len(chunk)} learner(s) need {standard} ({reason})",
            )
            groups.append(group)
            for _, lid, _ in chunk:
                in_group[lid] = group

    # -- stations, block by block -------------------------------------------------------------
    load: list[dict[str, int]] = [{} for _ in range(n_blocks)]
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
                found = next((c for c in ranked[lid][0] if c.item.id == joined.item.id), None)
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
            _fill_block(
                lid,
                ranked[lid][0],
                contexts[lid],
                start,
                block_minutes,
                caps,
                load[block],
                plans[lid],
                used[lid],
                per_standard[lid],
                k_alternatives,
            )
    playlists = {}
    for lid in contexts:
        busy = sum(a.minutes for a in plans[lid])
        playlists[lid] = Playlist(
            n_blocks * block_minutes, plans[lid], n_blocks * block_minutes - busy, ranked[lid][1], ranked[lid][2]
        )
    return Rotation(n_blocks * block_minutes, block_minutes, playlists, groups, load)


def _fill_block(
    lid: str,
    ranked: list[Candidate],
    ctx: PlanContext,
    start: float,
    block_minutes: float,
    caps: Mapping[str, int],
    load: dict[str, int],
    plan: list[Activity],
    used: set[str],
    per_standard: dict[str, int],
    k: int,
) -> None:
    """Seat the learner at the best station with a free seat and fill the block with its items."""

    def seat_free(cand: Candidate) -> bool:
        modality = cand.item.modality.value
        if modality == Modality.SMALL_GROUP.value:
            return False  # the teacher's table is for groups
        return modality not in caps or load.get(modality, 0) < caps[modality]

    previous = plan[-1].modality if plan else None
    first = _pick(ranked, block_minutes, used, per_standard, ctx.config.max_per_standard, previous, seat_free)
    if first is None:
        return
    station = first.item.modality.value
    load[station] = load.get(station, 0) + 1
    t = start
    cand: Candidate | None = first
    while cand is not None:
        window = start + block_minutes - t
        alts = _alternatives(
            [c for c in ranked if c.item.modality.value == station], cand, window, used | {cand.item.id}, k
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
            lambda c: c.item.modality.value == station,
        )
