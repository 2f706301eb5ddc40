"""Checkpoints: earlier states of a learner, so an answer that arrives late refolds only what
came after one instead of the learner's whole event log.

Answers count in the order they happened (:func:`serving.evidence.evidence`). One that arrives
after later ones (a device syncing offline work, statements read back from an LRS) used to mean
folding the learner's whole log again: its cost grew with the learner's history (0.1-0.25 s per
thousand answers here) and was paid under the learner's lock. Every
:data:`EVERY` answers folded, the learner as it stands is kept in its record (the newest
:data:`KEEP` of them, in the meta as ``cp``); a late batch restores the newest checkpoint that
comes before all of its answers and folds on from there. A learner who had a late batch also
keeps one *near* checkpoint, at most :data:`NEAR` answers behind the head of the log, until the
next of the :data:`KEEP`: whose answers came out of order once (a device syncing, statements
forwarded out of order) usually does again, and an answer a few statements late then refolds
a few dozen answers, not up to :data:`EVERY` of them. Learners whose answers come in order
keep no near checkpoint, so they write no larger record.

A checkpoint is the learner after the first ``position`` events of its log, all of them folded
in time order, the latest time folded (an answer's, or a diagnostic's start) ``time``. Every
event logged after it happened at or after ``time`` (each was folded on, or refolded from it),
so the log in time order is the checkpoint's part followed by the rest: restoring it and
folding the rest in time order is a rebuild of the whole log, with exactly the same operations
on the same numbers. A rebuild from the log (a new model, a grade change, an activity aligned
since) starts the learner afresh, without checkpoints; the checkpoints are taken again as
answers come.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from engine.learner import META_VERSION, Learner, LearnerCore, LearnerMeta
from models.base import ModelFormatError, state_from_bytes, state_to_bytes
from serving.evidence import evidence
from serving.stores.base import StoredEvent

__all__ = ["EVERY", "KEEP", "Checkpoint", "oldest", "restamp", "restore", "take", "verify"]

#: answers folded between two checkpoints: a late batch refolds at most about ``EVERY x KEEP``
#: answers when it comes after the older checkpoint
EVERY = 200
#: checkpoints kept per learner (each is the learner's state and progress, compressed: about
#: 14 kB for a learner with a thousand answers)
KEEP = 2
#: answers folded between two *near* checkpoints: besides those :data:`EVERY` answers apart, the
#: learner as it was at most this many answers ago is kept (one, replaced as answers come), so an
#: answer only slightly late (statements sent at once and forwarded out of order, a device a
#: minute behind) refolds a few dozen answers, not up to :data:`EVERY` of them
NEAR = 25


@dataclass(frozen=True)
class Checkpoint:
    position: int  # the events of the log it holds: the first ``position``
    time: float  # the latest time folded: an answer's or a diagnostic's start (``LearnerMeta.last_time``)
    events: int  # observations folded (``LearnerMeta.events``)
    model: str  # the model version that folded them
    data: str  # base64 of the zlib of: the meta's length (4 bytes), the meta JSON, the state bytes
    near: bool = False  # the near one (:data:`NEAR`), replaced by the next; else one of the :data:`KEEP`

    def to_json(self) -> dict[str, Any]:
        out = {"n": self.position, "t": self.time, "e": self.events, "model": self.model, "data": self.data}
        return {**out, "near": True} if self.near else out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint | None:
        """None for an entry this version cannot read (it is then not used)."""
        try:
            return cls(
                int(data["n"]),
                float(data["t"]),
                int(data["e"]),
                str(data["model"]),
                str(data["data"]),
                bool(data.get("near", False)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def take(learner: Learner, position: int, model: str, late: bool = False) -> None:
    """Keep ``learner`` as it stands (its log's first ``position`` events folded): as one of the
    :data:`KEEP` when :data:`EVERY` answers were folded since the newest of them (the oldest
    beyond :data:`KEEP` go); else as the near one after a refold for a late batch (``late``),
    and then every :data:`NEAR` answers in place of the previous one, until the next of the
    :data:`KEEP`. A learner whose answers always come in order keeps no near one."""
    meta = learner.meta
    kept = [c for c in (Checkpoint.from_json(d) for d in meta.checkpoints) if c is not None and c.model == model]
    far = [c for c in kept if not c.near]
    near = [c for c in kept if c.near and (not far or c.events > far[-1].events)]
    since_far = meta.events - (far[-1].events if far else 0)
    since_near = meta.events - near[-1].events if near else 0
    if meta.last_time is not None and since_far >= EVERY:
        far.append(_checkpoint(learner, position, model, near=False))
        near = []
    elif meta.last_time is not None and meta.events and (late or since_near >= NEAR):
        near = [_checkpoint(learner, position, model, near=True)]
    entries = [c.to_json() for c in [*far[-KEEP:], *near]]
    if entries != meta.checkpoints:
        meta.checkpoints = entries


def _checkpoint(learner: Learner, position: int, model: str, near: bool) -> Checkpoint:
    meta = learner.meta
    assert meta.last_time is not None  # (checked by the caller)
    header = _derived(meta)
    blob = len(header).to_bytes(4, "little") + header + state_to_bytes(learner.state)
    data = base64.b64encode(zlib.compress(blob, 1)).decode("ascii")
    return Checkpoint(position, meta.last_time, meta.events, model, data, near)


def restamp(meta: LearnerMeta, old: str, new: str) -> None:
    """The checkpoints ``old`` wrote, as written by ``new``: for a state that holds under ``new``
    as it is (folded before some items moved, none of which its log answers)."""
    meta.checkpoints = [{**d, "model": new} if d.get("model") == old else d for d in meta.checkpoints]


def oldest(meta: LearnerMeta, model: str, new: Sequence[StoredEvent] = ()) -> int | None:
    """The log position of ``meta``'s oldest checkpoint written by ``model`` that comes before
    every answer of ``new`` (None: none does, and the learner is rebuilt from its whole log):
    what :func:`restore` needs of the log is from there on."""
    earliest = _earliest(new)
    positions = [
        c.position
        for c in (Checkpoint.from_json(d) for d in meta.checkpoints)
        if c and c.model == model and c.time <= earliest
    ]
    return min(positions) if positions else None


def _earliest(new: Sequence[StoredEvent]) -> float:
    return min((e.time for e in new if e.kind == "answer"), default=float("inf"))


def restore(
    meta: LearnerMeta, model: str, tail: Sequence[StoredEvent], start: int, new: Sequence[StoredEvent]
) -> tuple[Learner, list[StoredEvent]] | None:
    """The learner as the newest usable checkpoint holds it, with ``meta``'s user-set part, and the
    events to fold on from it (the log after it and ``new``); None when none is usable: the
    learner is rebuilt from its whole log. ``tail``: the log from its ``start``-th event on.

    Usable: written by ``model``, over a prefix of the log, before every answer of ``new``, each
    void among ``new`` voiding an event after it, the grade it was folded with, and the
    diagnostics it knew started where they did (a diagnostic started since is folded on)."""
    earliest = _earliest(new)
    voided = {e.voids for e in new if e.kind == "void" and e.voids}
    for k in reversed(range(len(meta.checkpoints))):
        cp = Checkpoint.from_json(meta.checkpoints[k])
        if cp is None or cp.model != model or not start <= cp.position <= start + len(tail) or cp.time > earliest:
            continue
        rest = list(tail[cp.position - start :])
        if not voided <= {e.id for e in rest} | {e.id for e in new}:
            continue  # a void of an event the checkpoint holds
        if any(e.kind == "answer" and e.time < cp.time for e in rest):
            continue  # not a checkpoint of this log (it is kept with the log; defensive)
        learner = _unpack(cp, meta)
        if learner is not None:
            # the newer ones hold an event that ``new`` comes before, or voids: they go
            learner.meta.checkpoints = list(meta.checkpoints[: k + 1])
            return learner, [*rest, *new]
    return None


def verify(
    core: LearnerCore, meta: LearnerMeta, model: str, log: Sequence[StoredEvent], layout: int = META_VERSION
) -> list[int]:
    """The positions of ``meta``'s checkpoints that do not hold what folding their part of
    ``log`` (the learner's whole log) from scratch gives (``zpd replay --check``): unreadable,
    of another model, beyond the log, or another state. ``layout``: the record's meta layout,
    whose fold they were taken with (:func:`serving.evidence.evidence`)."""
    bad = []
    for entry in meta.checkpoints:
        cp = Checkpoint.from_json(entry)
        if cp is None:
            bad.append(-1)
            continue
        learner = _unpack(cp, meta) if cp.model == model and cp.position <= len(log) else None
        if learner is None:
            bad.append(cp.position)
            continue
        kept = core.resume(learner, [])  # as a resume from it starts
        rebuilt = core.rebuild(meta, evidence(log[: cp.position], layout))
        if state_to_bytes(kept.state) != state_to_bytes(rebuilt.state) or _derived(kept.meta) != _derived(rebuilt.meta):
            bad.append(cp.position)
    return bad


def _derived(meta: LearnerMeta) -> bytes:
    return orjson.dumps({k: v for k, v in meta.to_json().items() if k != "cp"}, option=orjson.OPT_SORT_KEYS)


def _unpack(cp: Checkpoint, meta: LearnerMeta) -> Learner | None:
    try:
        blob = zlib.decompress(base64.b64decode(cp.data))
        size = int.from_bytes(blob[:4], "little")
        then = LearnerMeta.from_json(orjson.loads(blob[4 : 4 + size]))
        state = state_from_bytes(blob[4 + size :])
    except (ValueError, zlib.error, orjson.JSONDecodeError, ModelFormatError):
        return None
    known = [d.user_set() for d in then.diagnostics]
    if then.grade != meta.grade or known != [d.user_set() for d in meta.diagnostics[: len(known)]]:
        return None
    # what users set is as it is now; what the observations made of the learner, as it was then
    # (a diagnostic started since has not begun in it: the fold starts it where it did)
    then.seed, then.interests, then.goal, then.overrides = meta.seed, meta.interests, meta.goal, meta.overrides
    then.diagnostics = [*then.diagnostics, *(d.reset() for d in meta.diagnostics[len(known) :])]
    return Learner(state, then)
