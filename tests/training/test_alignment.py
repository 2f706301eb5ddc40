"""Skills onto standards: the curated ASSIST2009 alignment and its application to real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.sources import load_graph
from training.alignment import DEFAULT_ALIGNMENT, align_standards, load_alignment
from training.loaders import load_interactions

SAMPLE = (
    Path(__file__).resolve().parents[2] / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
)


def test_bundled_alignment_covers_every_skill_with_real_standards() -> None:
    mapping = load_alignment()
    assert set(mapping) == {str(i) for i in range(1, 111)}
    graph = load_graph()
    codes = {c for cs in mapping.values() for c in cs}
    assert codes <= set(graph.standards) and len(codes) == 121
    high = load_alignment(min_confidence="high")
    assert len({c for cs in high.values() for c in cs}) < len(codes)


def test_alignment_replaces_skills_by_standards_on_real_data() -> None:
    table, _ = load_interactions(SAMPLE, "akt")
    mapping = load_alignment()
    aligned, dropped = align_standards(table, mapping)
    assert dropped == 0 and aligned.n_attempts == table.n_attempts
    for a in range(0, table.n_attempts, 97):  # spot-check: the union of the skills' standards
        skills = [table.standard_ids[s] for s in table.standards_of(a)]
        expected = {c for s in skills for c in mapping[s]}
        assert {aligned.standard_ids[s] for s in aligned.standards_of(a)} == expected
    np.testing.assert_array_equal(aligned.correct, table.correct)


def test_unaligned_attempts_are_dropped_and_counted() -> None:
    table, _ = load_interactions(SAMPLE, "akt")
    skill = table.standard_ids[table.standards_of(0)[0]]
    only = {skill: load_alignment()[skill]}  # a mapping that knows a single skill
    aligned, dropped = align_standards(table, only)
    with_skill = sum(
        1 for a in range(table.n_attempts) if skill in {table.standard_ids[s] for s in table.standards_of(a)}
    )
    assert aligned.n_attempts == with_skill and dropped == table.n_attempts - with_skill > 0
    assert aligned.n_learners == table.n_learners and aligned.learner_offsets[-1] == with_skill


def test_bad_alignment_files(tmp_path: Path) -> None:
    bad = tmp_path / "a.csv"
    bad.write_text("skill_id,standard,confidence\n1,6.SP.B.4,sure\n")
    with pytest.raises(
        ValueError, match=r"a.csv line 2: column 'confidence' must be one of none, low, medium, high, got 'sure'"
    ):
        load_alignment(bad)
    bad.write_text("skill,standard\n1,6.SP.B.4\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) confidence, skill_id"):
        load_alignment(bad)
    with pytest.raises(ValueError, match="min_confidence"):
        load_alignment(DEFAULT_ALIGNMENT, "certain")
