"""Tests of the interaction loaders and table (data/kt_sample + small literal files only).

Expected counts on data/kt_sample were computed with a separate plain-Python script (see
data/kt_sample/SOURCE.md), not with the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import training.cli as training_cli
from models.bkt import GraphBKT, bkt_config
from tests.models.test_neural import SMALL as SMALL_MODELS
from tests.models.test_neural import perturbed
from training.loaders import (
    CsvColumns,
    DataError,
    LoadReport,
    akt_fold_paths,
    load_akt,
    load_csv,
    load_dedup,
    load_interactions,
    load_xapi,
)
from training.train import predict_table

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "kt_sample"
PID = SAMPLE / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
STATICS = SAMPLE / "statics2011" / "statics_head12.csv"
DEDUP = SAMPLE / "assist2009_dedup" / "preprocessed_data_train_head30.csv"
REPEATS = Path(__file__).resolve().parent / "data" / "akt_repeats"  # every kind of repeat; see its README
EXT = "https://w3id.org/zpd-engine/xapi/extensions/standards"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def items_of(table, learner: int = 0) -> list[str]:
    return [table.item_ids[i] for i in table.learner_sequence(learner).item]


def standards_of(table, attempt: int) -> set[str]:
    return {table.standard_ids[s] for s in table.standards_of(attempt)}


SIMPLE = CsvColumns(
    learner="learner", item="item", correct="correct", standards="skills", standards_sep=";", timestamp="time"
)


# ---- the real sample ---------------------------------------------------------------------------


def test_akt_four_line_sample_counts_and_collapse():
    table, report = load_akt(PID)
    # 1,614 multi-skill expansions merge 1,755 rows; 3 single-skill problems repeated in a row
    # (e.g. learner 92245: problem 3792, skill 20, twice) are re-attempts and stay attempts
    assert (report.rows_read, report.attempts, report.duplicates_collapsed) == (10982, 9227, 1755)
    assert report.repeats_kept == 3 and report.rows_unaccounted == 0
    assert (table.n_learners, table.n_items, table.n_standards) == (150, 5959, 97)
    assert report.outcome_conflicts == 0 and report.rows_skipped == 0
    assert table.summary()["multi_standard_attempts"] == 1614
    assert int(table.correct.sum()) == 5997
    # learner 82295: 1366,1366,1424,1424,1413,1413,... with skills 7,9,7,9,... -> one attempt per problem
    assert table.learner_ids[0] == "82295"
    assert items_of(table) == ["1366", "1424", "1413", "2985", "2976", "2993", "2975"]
    assert standards_of(table, 0) == {"7", "9"}
    assert table.learner_sequence(0).correct.tolist() == [1, 0, 1, 0, 1, 1, 1]


def test_akt_layout_is_detected():
    detected, _ = load_akt(PID)
    explicit, _ = load_akt(PID, lines_per_learner=4)
    assert detected.fingerprint() == explicit.fingerprint()
    with pytest.raises(DataError, match="line 3: responses must be 0 or 1, got '7'"):
        load_akt(PID, lines_per_learner=3)  # read as 3-line, the skill ids line is the responses


def test_akt_fold_paths_and_three_line_assist2015():
    paths = akt_fold_paths(SAMPLE / "assist2015", 1)
    assert [p.name for p in paths] == ["assist2015_train1.csv", "assist2015_valid1.csv", "assist2015_test1.csv"]
    expected = {"train": (200, 6674, 4810), "valid": (60, 2680, 1930), "test": (60, 2434, 1711)}
    ids = {}
    for split, (learners, attempts, correct) in expected.items():
        table, report = load_interactions(SAMPLE / "assist2015", "akt", fold=1, split=split)
        assert (table.n_learners, table.n_attempts, int(table.correct.sum())) == (learners, attempts, correct)
        # item = skill in ASSIST2015: runs of one skill are different problems and must stay separate
        assert report.duplicates_collapsed == 0 and "kept as separate attempts" in report.warnings[0]
        assert all(standards_of(table, a) == {table.item_ids[table.item[a]]} for a in range(50))
        ids[split] = set(table.learner_ids)
    assert not (ids["train"] & ids["valid"] or ids["train"] & ids["test"] or ids["valid"] & ids["test"])
    with pytest.raises(FileNotFoundError, match="_train7.csv"):
        akt_fold_paths(SAMPLE / "assist2015", 7)


def test_akt_statics_length_header_and_optional_collapse():
    table, report = load_akt(STATICS)
    assert (table.n_learners, table.n_attempts, table.n_items) == (12, 7675, 1187)
    assert table.learner_ids[:2] == ("statics_head12#1", "statics_head12#2")  # no learner id in the file
    collapsed, report = load_akt(STATICS, collapse=True)
    assert (collapsed.n_attempts, report.duplicates_collapsed, report.outcome_conflicts) == (7667, 8, 5)


def test_dedup_sample_with_q_matrix():
    table, report = load_dedup(DEDUP)
    assert (table.n_learners, table.n_attempts, table.n_items, table.n_standards) == (30, 6163, 3998, 94)
    assert report.duplicates_collapsed == 0 and int(table.correct.sum()) == 4467
    assert table.summary()["multi_standard_attempts"] == 1056
    assert np.isnan(table.timestamp).all()  # timestamps are 0 = unknown in this file
    by_skill_id, _ = load_dedup(DEDUP, standards="skill_id")
    assert by_skill_id.n_standards == 111 and by_skill_id.summary()["multi_standard_attempts"] == 0


def test_dedup_item_outside_q_matrix(tmp_path):
    path = write(tmp_path, "d.csv", "user_id\titem_id\ttimestamp\tcorrect\tskill_id\n7\t17708\t0\t1\t3\n")
    (tmp_path / "q_mat.npz").write_bytes((SAMPLE / "assist2009_dedup" / "q_mat.npz").read_bytes())
    with pytest.raises(DataError, match=r"d.csv line 2: item_id must be an item index below 17708"):
        load_dedup(path)


# ---- collapse of consecutive duplicates ----------------------------------------------------------


def test_consecutive_rows_of_one_item_become_one_attempt_with_two_standards(tmp_path):
    path = write(
        tmp_path,
        "a.csv",
        "learner,item,correct,skills,time\n"
        "u1,p1,1,A,\n"  # p1 tagged with A and B: two rows, one answer
        "u1,p1,1,B,\n"
        "u1,p2,0,A,\n"
        "u1,p1,1,A,\n",
    )  # p1 again later: a new attempt
    table, report = load_csv(path, SIMPLE)
    assert items_of(table) == ["p1", "p2", "p1"]
    assert standards_of(table, 0) == {"A", "B"} and standards_of(table, 2) == {"A"}
    assert report.duplicates_collapsed == 1
    uncollapsed, _ = load_csv(path, SIMPLE, collapse=False)
    assert uncollapsed.n_attempts == 4


def test_akt_literal_collapse_keeps_non_consecutive_repeats(tmp_path):
    path = write(tmp_path, "x.csv", "0,u1\n5,5,6,5\n1,2,1,1\n1,1,0,1\n")
    table, report = load_akt(path)
    assert items_of(table) == ["5", "6", "5"]
    assert standards_of(table, 0) == {"1", "2"} and standards_of(table, 2) == {"1"}
    assert report.duplicates_collapsed == 1


def test_outcome_conflict_policies(tmp_path):
    path = write(tmp_path, "c.csv", "learner,item,correct,skills,time\nu1,p1,0,A,\nu1,p1,1,B,\nu1,p2,1,A,\n")
    table, report = load_csv(path, SIMPLE)
    assert table.learner_sequence(0).correct.tolist() == [0, 1]  # first row's outcome kept
    assert report.outcome_conflicts == 1 and "c.csv line 2" in report.examples["outcome_conflict"][0]
    split, _ = load_csv(path, SIMPLE, on_conflict="split")
    assert items_of(split) == ["p1", "p1", "p2"]
    with pytest.raises(DataError, match=r"c.csv line 2: outcome of consecutive rows .* 'p1' disagree \(0, 1\)"):
        load_csv(path, SIMPLE, on_conflict="error")


# ---- AKT: which repeated rows are one attempt ------------------------------------------------------
# One learner per literal file: header / problem ids / skill ids / responses.


def test_akt_multi_skill_expansion_with_agreeing_outcomes_is_one_attempt(tmp_path):
    # problem 5 carries skills 1 and 2: two rows, one answer
    table, report = load_akt(write(tmp_path, "a.csv", "0,u1\n5,5,6\n1,2,1\n1,1,0\n"))
    assert items_of(table) == ["5", "6"] and table.correct.tolist() == [1, 0]
    assert standards_of(table, 0) == {"1", "2"}
    assert (report.attempts, report.duplicates_collapsed, report.repeats_kept, report.outcome_conflicts) == (2, 1, 0, 0)


def test_akt_same_single_skill_problem_twice_is_a_re_attempt(tmp_path):
    table, report = load_akt(write(tmp_path, "b.csv", "0,u1\n7,7\n3,3\n0,1\n"))
    assert items_of(table) == ["7", "7"] and table.correct.tolist() == [0, 1]
    assert (report.attempts, report.duplicates_collapsed, report.repeats_kept) == (2, 0, 1)
    # the same answer twice is still two attempts: only the skill map can say rows are copies
    same, report = load_akt(write(tmp_path, "b2.csv", "0,u1\n7,7\n3,3\n1,1\n"))
    assert same.n_attempts == 2 and report.duplicates_collapsed == 0


def test_akt_multi_skill_problem_answered_twice_in_a_row_is_two_attempts(tmp_path):
    # skill 1 comes back: the expansion of a second answer starts
    table, report = load_akt(write(tmp_path, "e.csv", "0,u1\n5,5,5,5\n1,2,1,2\n0,0,1,1\n"))
    assert items_of(table) == ["5", "5"] and table.correct.tolist() == [0, 1]
    assert standards_of(table, 0) == standards_of(table, 1) == {"1", "2"}
    assert (report.duplicates_collapsed, report.repeats_kept, report.outcome_conflicts) == (2, 1, 0)


def test_akt_multi_skill_rows_that_disagree_stay_attempts_and_are_counted(tmp_path):
    # problem 5 carries skills 1 and 2, so its two rows look like one answer written once per skill;
    # but copies of one answer cannot disagree: each row is an attempt (no response is lost)
    path = write(tmp_path, "c.csv", "0,u1\n5,5,6\n1,2,1\n1,0,1\n")
    table, report = load_akt(path)
    assert items_of(table) == ["5", "5", "6"] and table.correct.tolist() == [1, 0, 1]
    assert (report.attempts, report.duplicates_collapsed, report.repeats_kept, report.outcome_conflicts) == (3, 0, 1, 1)
    assert report.examples["outcome_conflict"] == [
        "c.csv line 4: responses of learner 'u1' on item '5' (values 1-2, skills 1, 2) disagree (1, 0)"
    ]
    assert "1 outcome conflicts: kept one attempt per row" in str(report)
    first, report = load_akt(path, on_conflict="first")  # the "correct on first attempt" label
    assert first.correct.tolist() == [1, 1] and report.outcome_conflicts == 1 and report.duplicates_collapsed == 1
    with pytest.raises(DataError, match=r"c.csv line 4: responses of learner 'u1' on item '5' \(values 1-2"):
        load_akt(path, on_conflict="error")


def test_akt_merging_off_makes_every_row_an_attempt(tmp_path):
    path = write(tmp_path, "d.csv", "0,u1\n5,5,6,6\n1,2,3,3\n1,1,0,0\n")
    merged, _ = load_akt(path)
    assert merged.n_attempts == 3
    for table, report in (load_akt(path, collapse=False), load_interactions(path, "akt", collapse=False)):
        assert items_of(table) == ["5", "5", "6", "6"] and standards_of(table, 0) == {"1"}
        assert (report.attempts, report.duplicates_collapsed, report.repeats_kept) == (4, 0, 2)
        assert "merging off" in str(report)


def test_akt_collapse_true_merges_every_repeat_as_before(tmp_path):
    table, report = load_akt(write(tmp_path, "r.csv", "0,u1\n7,7,8\n3,3,4\n0,1,1\n"), collapse=True)
    assert items_of(table) == ["7", "8"] and table.correct.tolist() == [0, 1]  # the first response
    assert (report.duplicates_collapsed, report.outcome_conflicts) == (1, 1)


def test_akt_skill_map_comes_from_all_files_of_the_load(tmp_path):
    # in b.csv alone problem 5 shows one skill; a.csv shows it has two
    a = write(tmp_path, "a.csv", "0,u1\n5,5\n1,2\n1,1\n")
    b = write(tmp_path, "b.csv", "0,u2\n5,5\n1,2\n0,0\n")
    assert load_akt(b)[0].n_attempts == 1
    together, report = load_akt([a, b])
    assert together.n_attempts == 2 and report.duplicates_collapsed == 2
    alone, _ = load_akt(write(tmp_path, "s.csv", "0,u3\n5,5\n1,1\n0,0\n"))
    assert alone.n_attempts == 2


def test_akt_rows_around_a_skipped_value_are_not_neighbours(tmp_path):
    # the middle position is skipped: the two rows of problem 5 were not consecutive in the file
    path = write(tmp_path, "g.csv", "0,u1\n5,9,5\n1,1,2\n1,x,1\n")
    table, report = load_akt(path, on_error="skip")
    assert items_of(table) == ["5", "5"] and report.duplicates_collapsed == 0 and report.repeats_kept == 0


def test_akt_fixture_fold_counts():
    expected = {"train": (13, 10, 3, 3, 1), "valid": (3, 2, 1, 0, 0), "test": (3, 3, 0, 1, 0)}
    for split, counts in expected.items():
        table, report = load_interactions(REPEATS, "akt", fold=1, split=split)
        got = (report.rows_read, report.attempts, report.duplicates_collapsed, report.repeats_kept)
        assert (*got, report.outcome_conflicts) == counts, split
    table, _ = load_interactions(REPEATS, "akt", fold=1, split="train")
    assert items_of(table) == ["10", "11", "11", "12", "12", "13", "13"]
    assert table.learner_sequence(0).correct.tolist() == [1, 0, 1, 1, 0, 0, 1]


# ---- the report's counts add up ---------------------------------------------------------------------


def balanced(report) -> bool:
    return report.rows_read == report.attempts + report.duplicates_collapsed + report.rows_skipped


def test_akt_counts_add_up_with_skips_merges_and_repeats(tmp_path):
    text = (
        "0,u1\n5,5,6,6,x\n1,2,3,3,4\n1,1,0,1,7\n"  # last position: bad id and bad response, one row
        "1,u2\n5,6\n1\n0,0\n"  # length mismatch: 2 rows
        "2,u3\n5,5,8\n1,2,9\n0,1,z\n"  # a conflict and a bad response
    )
    table, report = load_akt(write(tmp_path, "bad.csv", text), on_error="skip")
    assert report.skipped == {"id_not_integer": 1, "length_mismatch": 2, "response_not_binary": 1}
    assert (report.rows_read, report.attempts, report.duplicates_collapsed) == (10, 5, 1)
    assert balanced(report) and report.rows_unaccounted == 0 and report.outcome_conflicts == 1
    assert "rows: 5 attempts + 1 merged into them + 4 skipped = 10 read" in str(report)


def test_every_loader_accounts_for_every_row(tmp_path):
    loads = [
        load_akt(PID),
        load_akt(STATICS, collapse=True),
        load_dedup(DEDUP),
        load_csv(
            write(tmp_path, "t.csv", "learner,item,correct,skills,time\nu1,p1,1,A,\nu1,p1,0,B,\n,p2,1,A,\n"),
            SIMPLE,
            on_error="skip",
        ),
    ]
    for table, report in loads:
        assert balanced(report) and report.attempts == table.n_attempts, report.format


def test_report_text_names_rows_attempts_merges_skips_and_round_trips(tmp_path):
    _, report = load_interactions(REPEATS, "akt", fold=1, split="train")
    text = str(report)
    assert text.splitlines()[:2] == [
        "akt: 13 rows read -> 10 attempts, 2 learners",
        "  rows: 10 attempts + 3 merged into them + 0 skipped = 13 read",
    ]
    assert "merged 3 rows into the attempt before them: multi-skill expansions" in text
    assert "kept 3 rows that repeat the previous item as attempts of their own" in text
    again = LoadReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert str(again) == text


# ---- leakage: one prediction per attempt, from earlier attempts only ----------------------------------


def leakage_models(table):
    for name, (cls, hyper) in SMALL_MODELS.items():
        yield name, perturbed(cls.for_table(table, hyper=hyper, seed=0), seed=0)
    yield "bkt", GraphBKT(bkt_config(list(table.standard_ids)))


def test_each_attempt_is_predicted_once_from_earlier_attempts_only():
    table, _ = load_interactions(REPEATS, "akt", fold=1, split="train")
    u1 = table.learner_sequence(0)  # 10 (expansion) | 11, 11 (re-attempt) | 12, 12 (conflict) | 13, 13
    for name, model in leakage_models(table):
        base = predict_table(model, table)
        assert base.shape == (table.n_attempts,), name  # the expansion of problem 10 is one prediction
        for t in range(len(u1)):
            flipped = table.correct.copy()
            flipped[t] = 1 - flipped[t]
            again = predict_table(model, dataclasses.replace(table, correct=flipped))
            # the attempt's own outcome (and later ones) cannot move its prediction ...
            np.testing.assert_allclose(again[: t + 1], base[: t + 1], atol=1e-6, err_msg=f"{name} attempt {t}")
            if t == 1:  # ... but a later one does: the re-attempt of 11 learns from the first try
                assert abs(again[2] - base[2]) > 1e-4, name


# ---- errors in the AKT line formats ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,u1\n5,6,7\n1,1,1\n1,2,0\n", "bad.csv line 4: responses must be 0 or 1, got '2' (value 2 of 3)"),
        ("0,u1\n5,x,7\n1,1,1\n1,0,0\n", "bad.csv line 2: problem ids must be an integer id, got 'x'"),
        (
            "0,u1\n5,99999999999999999999,7\n1,1,1\n1,0,0\n",
            "bad.csv line 2: problem ids must be an integer id, got '99999999999999999999'",
        ),
        (
            "0,u1\n5,6,7\n1,1\n1,0,0\n",
            "bad.csv line 3: skill ids has 2 values but problem ids (line 2) has 3 (learner 'u1', block starting at line 1)",
        ),
        ("0,u1\n5\n1\n1\n0,u1\n6\n1\n0\n", "bad.csv line 5: learner id 'u1' already has a block at bad.csv line 1"),
        (
            "0,u1\n5\n1\n1\n0,u2\n6\n",
            "bad.csv line 5: incomplete learner block: expected 4 lines, the file ends after 2",
        ),
        ("0,u1,9\n5\n1\n1\n", "bad.csv line 1: header must be 'index,learner_id' or a sequence length, got '0,u1,9'"),
        ("x\ny\nz\n", "bad.csv: cannot tell whether this is the 3-line or the 4-line"),
    ],
)
def test_akt_errors_name_file_line_and_field(tmp_path, text, message):
    with pytest.raises(DataError) as info:
        load_akt(write(tmp_path, "bad.csv", text))
    assert message in str(info.value)


def test_akt_errors_in_three_line_files(tmp_path):
    with pytest.raises(DataError, match=r"s.csv line 4: length says 3 interactions but ids \(line 5\) has 2"):
        load_akt(write(tmp_path, "s.csv", "2\n4,5\n1,0\n3\n4,5\n1,1\n"), lines_per_learner=3)
    with pytest.raises(DataError, match=r"s.csv line 4: header must be 'index,learner_id' or a sequence length"):
        load_akt(write(tmp_path, "s.csv", "0,u1\n4\n1\nbad header\n4\n1\n"), lines_per_learner=3)


def test_akt_skip_counts_by_reason(tmp_path):
    text = (
        "0,u1\n5,6,7\n1,1,1\n1,2,0\n"  # one bad response: that position only
        "1,u2\n5,6\n1\n0,0\n"  # length mismatch: the whole block
        "2,u3\n8,9\n1,1\n1,1\n"
    )
    table, report = load_akt(write(tmp_path, "bad.csv", text), on_error="skip")
    assert report.skipped == {"response_not_binary": 1, "length_mismatch": 2}
    assert report.rows_read == 7 and table.learner_ids == ("u1", "u3")
    assert items_of(table, 0) == ["5", "7"]
    assert report.examples["response_not_binary"] == [
        "bad.csv line 4: responses must be 0 or 1, got '2' (value 2 of 3)"
    ]
    assert report.examples["length_mismatch"][0].startswith("bad.csv line 7: skill ids has 1 values")


# ---- CSV, DataShop, Parquet -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message", "reason"),
    [
        (
            "u1,p1,maybe,A,",
            "t.csv line 3: correct must be one of ['0', '1', 'correct', 'false', 'incorrect', 'true'], got 'maybe'",
            "bad_outcome",
        ),
        (",p1,1,A,", "t.csv line 3: learner is empty; expected a learner id", "missing_learner"),
        (
            "u1,p1,1,A,yesterday",
            "t.csv line 3: time must be ISO-8601 (2024-03-01T12:00:00Z) or epoch seconds, got 'yesterday'",
            "bad_timestamp",
        ),
        ("u1,p1,1", "t.csv line 3: expected 5 fields, got 3", "wrong_field_count"),
    ],
)
def test_csv_errors_and_skips(tmp_path, row, message, reason):
    path = write(tmp_path, "t.csv", f"learner,item,correct,skills,time\nu1,p0,1,A,\n{row}\nu1,p2,0,A,\n")
    with pytest.raises(DataError) as info:
        load_csv(path, SIMPLE)
    assert str(info.value) == message
    table, report = load_csv(path, SIMPLE, on_error="skip")
    assert report.skipped == {reason: 1} and report.examples[reason] == [message]
    assert items_of(table) == ["p0", "p2"] and report.rows_read == 3


def test_csv_missing_column_and_score_range(tmp_path):
    with pytest.raises(DataError, match=r"t.csv line 1: header lacks column\(s\) \['skills', 'time'\]"):
        load_csv(write(tmp_path, "t.csv", "learner,item,correct\nu1,p1,1\n"), SIMPLE)
    scored = CsvColumns(learner="learner", item="item", score="score")
    table, _ = load_csv(write(tmp_path, "s.csv", "learner,item,score\nu1,p1,0.25\nu1,p2,1\n"), scored)
    assert table.correct.tolist() == [0.25, 1.0]
    with pytest.raises(DataError, match=r"s.csv line 2: score must be a number in \[0, 1\], got '1.5'"):
        load_csv(write(tmp_path, "s.csv", "learner,item,score\nu1,p1,1.5\n"), scored)


def test_rows_are_grouped_by_learner_and_ordered_by_time(tmp_path):
    path = write(
        tmp_path,
        "t.csv",
        "learner,item,correct,skills,time\n"
        "u1,late,1,A,2024-03-01T12:00:00+02:00\n"  # 10:00 UTC
        "u2,x,1,A,\n"  # u2 has no times: file order
        "u1,early,0,A,2024-03-01T09:00:00Z\n"
        "u2,y,1,A,\n"
        "u1,tie1,1,A,1709290800\n"  # 11:00 UTC, epoch seconds
        "u1,tie2,1,A,2024-03-01T11:00:00Z\n",
    )  # same instant: file order kept
    table, report = load_csv(path, SIMPLE)
    assert table.learner_ids == ("u1", "u2")
    assert items_of(table, 0) == ["early", "late", "tie1", "tie2"]
    assert items_of(table, 1) == ["x", "y"]
    assert table.learner_sequence(0).timestamp[0] == 1709283600.0
    assert report.warnings == []


def test_partial_timestamps_keep_file_order_with_a_warning(tmp_path):
    path = write(
        tmp_path,
        "t.csv",
        "learner,item,correct,skills,time\nu1,b,1,A,2024-03-02T00:00:00Z\nu1,c,1,A,\nu1,a,1,A,2024-03-01T00:00:00Z\n",
    )
    table, report = load_csv(path, SIMPLE)
    assert items_of(table) == ["b", "c", "a"]
    assert "timestamps on only some rows" in report.warnings[0]


def test_datashop_preset(tmp_path):
    header = "Row\tAnon Student Id\tProblem Name\tStep Name\tOutcome\tKC (Default)\tTime\n"
    rows = (
        "1\tstu_a\tP1\ts1\tHINT\tKC-x~~KC-y\t2011-09-21 17:35:28\n"
        "2\tstu_a\tP1\ts1\tCORRECT\tKC-x~~KC-y\t2011-09-21 17:35:40\n"
        "3\tstu_a\tP1\ts2\tCORRECT\tKC-z\t2011-09-21 17:36:00\n"
        "4\tstu_b\tP1\ts1\tINCORRECT\t\t2011-09-21 17:37:00\n"
    )
    table, report = load_interactions(write(tmp_path, "ds.txt", header + rows), "csv", columns="datashop")
    assert items_of(table, 0) == ["P1 :: s1", "P1 :: s2"]
    assert table.learner_sequence(0).correct.tolist() == [0, 1]  # hint first = not correct on first attempt
    assert standards_of(table, 0) == {"KC-x", "KC-y"} and standards_of(table, 2) == set()
    assert report.outcome_conflicts == 1 and "no time zone" in report.warnings[0]


def test_parquet_without_pyarrow_names_the_package(tmp_path, monkeypatch):
    for module in ("pyarrow", "pyarrow.parquet", "pandas"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_csv(write(tmp_path, "t.parquet", "not really parquet"), SIMPLE)


# ---- xAPI -------------------------------------------------------------------------------------------


def statement(sid, name, obj, result, ts="2024-03-01T10:00:00Z", **extra):
    st = {
        "id": sid,
        "actor": {"account": {"homePage": "https://lms.example", "name": name}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": obj, "definition": {"extensions": {EXT: ["3.NF.A.1"]}}},
        "timestamp": ts,
    }
    if result is not None:
        st["result"] = result
    st.update(extra)
    return st


def jsonl(tmp_path, statements, name="s.jsonl"):
    return write(tmp_path, name, "\n".join(json.dumps(s) for s in statements) + "\n")


def test_xapi_outcomes_clamping_and_standards(tmp_path):
    path = jsonl(
        tmp_path,
        [
            statement("1", "u1", "q1", {"score": {"scaled": -0.5}}, ts="2024-03-01T10:00:00Z"),
            statement("2", "u1", "q2", {"score": {"scaled": 0.8}}, ts="2024-03-01T10:01:00Z"),
            statement("3", "u1", "q3", {"success": True, "score": {"scaled": 0.1}}, ts="2024-03-01T10:02:00Z"),
            statement("4", "u1", "q4", {"score": {"raw": 3, "min": 0, "max": 4}}, ts="2024-03-01T10:03:00Z"),
            statement("5", "u1", "video", None, ts="2024-03-01T10:04:00Z"),  # no result: not an answer
        ],
    )
    table, report = load_xapi(path)
    assert table.learner_sequence(0).correct.tolist() == pytest.approx([0.0, 0.8, 1.0, 0.75])
    assert standards_of(table, 0) == {"3.NF.A.1"}
    assert report.skipped == {"not_evidence": 1}
    assert "1 negative result.score.scaled values were clamped to 0" in report.warnings


def test_xapi_scaled_score_out_of_range_is_an_error(tmp_path):
    path = jsonl(tmp_path, [statement("1", "u1", "q1", {"score": {"scaled": 1.5}})])
    with pytest.raises(DataError, match=r"s.jsonl line 1: result.score.scaled must be a number in \[-1, 1\], got 1.5"):
        load_xapi(path)


def test_xapi_what_the_spec_allows_but_is_no_ones_answer_is_skipped_not_an_error(tmp_path):
    """A real LRS export holds group work and results that contradict their verb: valid xAPI, no
    one learner's answer. They are skipped and counted; a standards extension that is not codes is
    still an error, since training reads the answer's standards from it."""
    group = statement("2", "u1", "q2", {"success": True})
    group["actor"] = {
        "objectType": "Group",
        "member": [{"mbox": "mailto:a@school.example"}, {"mbox": "mailto:b@x.org"}],
    }
    contradicting = statement("3", "u1", "q3", {"success": True})
    contradicting["verb"] = {"id": "http://adlnet.gov/expapi/verbs/failed"}
    answer = statement("1", "u1", "q1", {"success": True})
    table, report = load_xapi(jsonl(tmp_path, [answer, group, contradicting]))
    assert table.n_attempts == 1 and report.skipped == {"anonymous_group": 1, "contradiction": 1}
    assert report.examples["contradiction"] == ["s.jsonl line 3"]
    bad = statement("4", "u1", "q4", {"success": True})
    bad["object"]["definition"]["extensions"][EXT] = 42
    with pytest.raises(DataError, match=r"b.jsonl line 1: extensions\[.*\] must be a standard code"):
        load_xapi(jsonl(tmp_path, [bad], name="b.jsonl"))


def test_xapi_duplicate_ids(tmp_path):
    first = statement("abc", "u1", "q1", {"success": True})
    redelivered = dict(first, stored="2024-03-01T10:00:05Z")  # LRS fields may differ
    path = jsonl(tmp_path, [first, statement("def", "u1", "q2", {"success": False}), redelivered])
    table, report = load_xapi(path)
    assert table.n_attempts == 2 and report.skipped == {"duplicate_statement": 1}
    assert report.examples["duplicate_statement"] == ["s.jsonl line 3: id abc"]

    conflicting = statement("abc", "u1", "q1", {"success": False})
    path = jsonl(tmp_path, [first, conflicting], name="c.jsonl")
    with pytest.raises(DataError, match=r"c.jsonl line 2: id 'abc' was already used at c.jsonl line 1 by a different"):
        load_xapi(path)
    table, report = load_xapi(path, on_error="skip")
    assert table.correct.tolist() == [1.0] and report.skipped == {"conflicting_statement": 1}


def test_xapi_actor_rules_voiding_and_json_array(tmp_path):
    """An e-mail address is never kept: mbox and its mbox_sha1sum give the same hashed id (salted
    with the tenant, as the API does); a voiding statement removes the one it points at."""
    import hashlib

    from engine.xapi import learner_id

    by_mail = statement("1", "u1", "q1", {"success": True})
    by_mail["actor"] = {"mbox": "mailto:kid@example.org"}
    hashed = statement("2", "u1", "q2", {"success": True})
    hashed["actor"] = {"mbox_sha1sum": hashlib.sha1(b"mailto:kid@example.org").hexdigest().upper()}
    voiding = {
        "id": "9",
        "actor": {"account": {"name": "admin"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": "3"},
    }
    doc = {"statements": [by_mail, hashed, statement("3", "u2", "q1", {"success": True}), voiding]}
    table, report = load_xapi(write(tmp_path, "a.json", json.dumps(doc)), tenant="school-a")
    expected = learner_id({"mbox": "mailto:kid@example.org"}, "school-a")
    assert table.learner_ids == (expected,) and "example" not in expected and table.n_attempts == 2
    assert expected != learner_id({"mbox": "mailto:kid@example.org"}, "school-b")
    assert report.skipped == {"voided": 1, "voiding_statement": 1}


def test_xapi_bad_json_line_is_skippable(tmp_path):
    path = write(tmp_path, "s.jsonl", json.dumps(statement("1", "u1", "q1", {"success": True})) + "\n{oops\n")
    with pytest.raises(DataError, match="s.jsonl line 2: is not valid JSON"):
        load_xapi(path)
    table, report = load_xapi(path, on_error="skip")
    assert table.n_attempts == 1 and report.skipped == {"bad_json": 1}


# ---- the table: splits, vocabularies, fingerprint ---------------------------------------------------


def test_folds_are_disjoint_cover_all_and_are_deterministic():
    table, _ = load_akt(PID)
    folds = table.learner_folds(5, seed=3)
    together = np.concatenate(folds)
    assert len(together) == len(set(together.tolist())) == table.n_learners
    assert sorted(len(f) for f in folds) == [30] * 5
    assert all(np.array_equal(a, b) for a, b in zip(folds, table.learner_folds(5, seed=3)))
    assert not np.array_equal(folds[0], table.learner_folds(5, seed=4)[0])
    # membership depends on learner ids, not on their order in the file
    reversed_table = table.subset(np.arange(table.n_learners)[::-1])
    ids = [{table.learner_ids[i] for i in f} for f in folds]
    assert ids == [{reversed_table.learner_ids[i] for i in f} for f in reversed_table.learner_folds(5, seed=3)]
    train, valid = table.split_learners(0.2, seed=3)
    assert len(valid) == 30 and not set(train.tolist()) & set(valid.tolist())


def test_subset_keeps_sequences_and_vocabularies():
    table, _ = load_akt(PID)
    part = table.subset([4, 2])
    assert part.learner_ids == (table.learner_ids[4], table.learner_ids[2])
    assert part.item_ids is table.item_ids
    original, copy = table.learner_sequence(2), part.learner_sequence(1)
    assert np.array_equal(original.item, copy.item) and np.array_equal(original.standard_indices, copy.standard_indices)
    assert np.array_equal(original.standard_offsets, copy.standard_offsets)
    assert sum(len(s) for s in part.iter_learners()) == part.n_attempts
    with pytest.raises(ValueError, match="must not repeat"):
        table.subset([1, 1])


def test_with_vocabularies_aligns_test_to_train(tmp_path):
    train, _ = load_csv(write(tmp_path, "a.csv", "learner,item,correct,skills,time\nu1,p1,1,A,\nu1,p2,1,B,\n"), SIMPLE)
    test, _ = load_csv(write(tmp_path, "b.csv", "learner,item,correct,skills,time\nu2,p2,1,B,\nu2,p3,0,C,\n"), SIMPLE)
    aligned = test.with_vocabularies(train.item_ids, train.standard_ids)
    assert aligned.item_ids == ("p1", "p2", "p3") and aligned.item.tolist() == [1, 2]
    assert aligned.fingerprint() == test.fingerprint()
    with pytest.raises(KeyError, match="'p3'"):
        test.with_vocabularies(train.item_ids, unknown="error")


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    table, _ = load_akt(PID)
    again, _ = load_akt(PID)
    assert table.fingerprint() == again.fingerprint()
    assert len(table.fingerprint()) == 64
    lines = PID.read_text().splitlines()
    lines[3] = "0" + lines[3][1:]  # flip the first response of the first learner (1 -> 0)
    changed, _ = load_akt(write(tmp_path, "changed.csv", "\n".join(lines) + "\n"))
    assert changed.fingerprint() != table.fingerprint()
    assert table.subset(np.arange(149)).fingerprint() != table.fingerprint()
    assert table.subset(np.arange(150)[::-1]).fingerprint() == table.fingerprint()  # learner order is not content


@pytest.mark.parametrize("changed_row", ["u1,p2,1,A,2024-03-01T10:00:01Z", "u1,p2,1,B,2024-03-01T10:00:00Z"])
def test_fingerprint_sees_times_and_standards(tmp_path, changed_row):
    head = "learner,item,correct,skills,time\nu1,p1,1,A,2024-03-01T09:00:00Z\n"
    base, _ = load_csv(write(tmp_path, "a.csv", head + "u1,p2,1,A,2024-03-01T10:00:00Z\n"), SIMPLE)
    other, _ = load_csv(write(tmp_path, "b.csv", head + changed_row + "\n"), SIMPLE)
    assert base.fingerprint() != other.fingerprint()


def test_dispatcher_rejects_unknown_format_and_missing_columns(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'json'"):
        load_interactions(PID, "json")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="columns="):
        load_interactions(PID, "csv")
    _, report = load_interactions(PID, "akt")
    assert json.loads(json.dumps(report.to_dict()))["attempts"] == 9227


# ---- encodings: one rule for every loader (engine.textfiles) -----------------------------------------


def test_csv_from_excel_bom_crlf_and_utf16_load_alike(tmp_path):
    text = "learner,item,correct,skills,time,Notes\r\nu1,p1,1,A;B,,ok\r\nu1,p2,0,B,,\r\nu2,p1,1,A,,é\r\n"
    expected = load_csv(write(tmp_path, "plain.csv", text.replace("\r\n", "\n")), SIMPLE).table
    for name, data in [("bom.csv", b"\xef\xbb\xbf" + text.encode()), ("utf16.csv", text.encode("utf-16"))]:
        path = tmp_path / name
        path.write_bytes(data)
        table, report = load_csv(path, SIMPLE)
        assert table.fingerprint() == expected.fingerprint(), name
        assert report.rows_read == 3 and table.learner_ids == ("u1", "u2")


def test_csv_in_big5_names_the_file_the_line_and_the_encoding(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_bytes("learner,item,correct,skills,time\nu1,p1,1,A,\nu1,數學,0,A,\n".encode("big5"))
    with pytest.raises(DataError) as info:
        load_csv(path, SIMPLE)
    assert info.value.source == "answers.csv" and info.value.line == 3 and info.value.path == str(path)
    assert str(info.value).startswith("answers.csv line 3: is not valid UTF-8 (bytes bc")
    assert "expected UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark" in str(info.value)
    with pytest.raises(DataError, match=r"answers.csv line 3: is not valid UTF-8"):
        load_csv(path, SIMPLE, on_error="skip")  # a file-level problem: not a row to skip


def test_akt_and_xapi_files_in_other_encodings(tmp_path):
    akt = tmp_path / "fold_train1.csv"
    akt.write_bytes("3\n1,2,3\n1,0,1\n".encode("utf-16-le"))
    with pytest.raises(DataError, match=r"fold_train1.csv: holds NUL bytes \(UTF-16 without a byte-order mark"):
        load_akt(akt)
    xapi = tmp_path / "s.jsonl"
    line = json.dumps(statement("1", "u1", "q1", {"success": True}), ensure_ascii=False)
    xapi.write_bytes((line + "\r\n").encode("utf-16"))
    table, _ = load_xapi(xapi)
    assert table.n_attempts == 1
    xapi.write_bytes((line.replace("u1", "ü1") + "\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"s.jsonl line 1: is not valid UTF-8"):
        load_xapi(xapi)


# ---- `zpd train` states what was loaded -------------------------------------------------------------


def train_cli(monkeypatch, *args: str):
    """Run `train` up to the training loop, which is replaced by a stub (its reports are returned)."""
    seen: dict = {}

    def no_training(tables, reports, *rest, **options):
        seen.update(tables=tables, reports=reports, tags=rest[-1])

    monkeypatch.setattr(training_cli, "_run_training", no_training)
    root = typer.Typer()
    root.callback()(lambda: None)
    root.add_typer(training_cli.train_app)
    data = ["--data", str(REPEATS), "--format", "akt", "--fold", "1", "--model", "logistic"]
    return CliRunner().invoke(root, ["train", *data, *args]), seen


def test_train_text_output_states_rows_attempts_merged_and_skipped(monkeypatch):
    result, seen = train_cli(monkeypatch)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "data train: akt: 13 rows read -> 10 attempts, 2 learners" in out
    assert "  rows: 10 attempts + 3 merged into them + 0 skipped = 13 read" in out
    assert "kept 3 rows that repeat the previous item as attempts of their own" in out
    assert "1 outcome conflicts: kept one attempt per row" in out
    assert "data test: akt: 3 rows read -> 3 attempts, 1 learners" in out
    assert seen["tables"]["train"].n_attempts == 10 and seen["tags"]["data.merge"] == "auto"


def test_train_merge_off_and_json(monkeypatch):
    result, seen = train_cli(monkeypatch, "--merge", "off")
    assert result.exit_code == 0, result.output
    assert "data train: akt: 13 rows read -> 13 attempts" in result.stdout and "merging off" in result.stdout
    assert seen["tables"]["train"].n_attempts == 13 and seen["reports"]["train"]["merge_rule"] == "off"
    quiet, _ = train_cli(monkeypatch, "--json")
    assert quiet.exit_code == 0 and quiet.stdout == ""  # the reports go into the JSON summary instead
    bad, _ = train_cli(monkeypatch, "--merge", "never")
    assert bad.exit_code == 2 and "'never'" in bad.output and "--merge" in bad.output
