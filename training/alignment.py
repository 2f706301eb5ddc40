"""Put a data set's skills onto a standards framework, using a curated alignment file.

The alignment is a CSV with ``skill_id,skill_name,standard,confidence,justification`` (one row
per skill-standard pair; see ``data/alignments/SOURCE.md``). Applying it to an interaction table
replaces each attempt's skills by the union of their aligned standards.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engine.textfiles import open_text
from training.interactions import InteractionTable

__all__ = ["CONFIDENCE_ORDER", "DEFAULT_ALIGNMENT", "align_standards", "load_alignment"]

DEFAULT_ALIGNMENT = Path(__file__).resolve().parent.parent / "data" / "alignments" / "assist2009_ccss.csv"
CONFIDENCE_ORDER = ("none", "low", "medium", "high")


def load_alignment(path: str | Path = DEFAULT_ALIGNMENT, min_confidence: str = "low") -> dict[str, tuple[str, ...]]:
    """skill id -> aligned standard codes with at least ``min_confidence``.

    Raises ValueError naming the line and column when the file is malformed.
    """
    if min_confidence not in CONFIDENCE_ORDER:
        raise ValueError(f"min_confidence must be one of {', '.join(CONFIDENCE_ORDER)}, got {min_confidence!r}")
    floor = CONFIDENCE_ORDER.index(min_confidence)
    mapping: dict[str, list[str]] = {}
    path = Path(path)
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        missing = {"skill_id", "standard", "confidence"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            confidence = (row["confidence"] or "").strip()
            if confidence not in CONFIDENCE_ORDER:
                raise ValueError(
                    f"{path.name} line {line}: column 'confidence' must be one of "
                    f"{', '.join(CONFIDENCE_ORDER)}, got {confidence!r}"
                )
            skill, standard = (row["skill_id"] or "").strip(), (row["standard"] or "").strip()
            if not skill:
                raise ValueError(f"{path.name} line {line}: column 'skill_id' is empty")
            if standard and CONFIDENCE_ORDER.index(confidence) >= floor:
                mapping.setdefault(skill, [])
                if standard not in mapping[skill]:
                    mapping[skill].append(standard)
    return {k: tuple(v) for k, v in mapping.items()}


def align_standards(table: InteractionTable, mapping: Mapping[str, tuple[str, ...]]) -> tuple[InteractionTable, int]:
    """A table whose standards are the aligned codes; attempts with no aligned standard are
    dropped. Returns the table and the number of dropped attempts."""
    vocab: list[str] = list(dict.fromkeys(code for codes in mapping.values() for code in codes))
    position = {code: i for i, code in enumerate(vocab)}
    per_skill = [
        np.array([position[c] for c in mapping.get(skill, ())], dtype=np.int32) for skill in table.standard_ids
    ]
    keep, offsets, indices = [], [0], []
    for a in range(table.n_attempts):
        codes = np.unique(np.concatenate([per_skill[s] for s in table.standards_of(a)] or [np.zeros(0, np.int32)]))
        if codes.size == 0:
            continue
        keep.append(a)
        indices.append(codes)
        offsets.append(offsets[-1] + codes.size)
    keep_arr = np.array(keep, dtype=np.int64)
    learner = table.learner[keep_arr]
    counts = np.bincount(learner, minlength=table.n_learners)
    learner_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    aligned = InteractionTable(
        learner_ids=table.learner_ids,
        item_ids=table.item_ids,
        standard_ids=tuple(vocab),
        learner_offsets=learner_offsets,
        learner=learner.astype(np.int32),
        item=table.item[keep_arr],
        standard_offsets=np.array(offsets, dtype=np.int64),
        standard_indices=np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
        correct=table.correct[keep_arr],
        timestamp=table.timestamp[keep_arr],
    )
    return aligned, table.n_attempts - len(keep)
