"""Training on Caliper logs: envelopes and events read by the API's reader, what is skipped and
why, duplicates and conflicts, and errors naming the file, line and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.xapi import account_id
from training.load_report import DataError
from training.loaders import load_interactions

DATA = Path(__file__).resolve().parents[1] / "engine" / "data" / "caliper"


def envelope(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def lines(tmp_path: Path, docs: list, name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    return path


def test_envelopes_as_json_lines_with_what_is_skipped_counted(tmp_path) -> None:
    mixed, canvas = envelope("mixed_v1p2.json"), envelope("canvas_grade_change.json")
    path = lines(tmp_path, [mixed, canvas, mixed])  # the first envelope delivered twice
    table, report = load_interactions(path, "caliper", tenant="school")
    ana = account_id("https://content.example.com/users/ana", "school", "caliper")
    learners = dict(zip(table.learner_ids, range(table.n_learners)))
    assert set(learners) == {
        ana,
        account_id("https://content.example.com/users/cam", "school", "caliper"),
        "urn:instructure:canvas:user:21070000000000002",
    }
    seq = table.learner_sequence(learners[ana])
    assert seq.correct.tolist() == [0.5, 1.0]  # numbers as text; extra credit as full marks
    assert {table.standard_ids[s] for a in range(table.n_attempts) for s in table.standards_of(a)} == {
        "https://case.example.org/uri/2db0815f-5295-5a47-a59b-8f59e6d26032",
        "https://content.example.com/objectives/3-nf-a-1",
    }
    assert report.skipped == {
        "entity": 2,  # the described Person, in each delivery
        # the three events the actions do not read (each delivery: skipped before their ids are
        # read), the answer without its grade, the grade out of 0, the grade taken back
        "not_evidence": 9,
        "no_learner": 2,  # the grade whose Attempt is named by its IRI alone
        "duplicate_event": 5,  # the second delivery of what the first stored or counted
    }
    assert report.rows_read == 22
    assert report.warnings == ["1 scores above their maximum (extra credit) were read as full marks"]
    assert report.examples["duplicate_event"][0] == "events.jsonl line 3 data[4]"


def test_one_document_and_caliper_1p0_without_ids(tmp_path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(envelope("v1p0_outcome.json"), indent=2), encoding="utf-8")  # pretty-printed
    table, report = load_interactions(path, "caliper")
    assert table.n_attempts == 0 and report.skipped == {"not_evidence": 2}  # 1.0's Result has no maximum
    events = tmp_path / "events.json"
    graded = copy.deepcopy(envelope("mixed_v1p2.json")["data"][5])
    events.write_text(json.dumps([graded, graded]), encoding="utf-8")  # a list of bare events
    table, report = load_interactions(events, "caliper")
    assert table.n_attempts == 1 and report.skipped == {"duplicate_event": 1}


def test_errors_name_the_file_line_and_field(tmp_path) -> None:
    mixed = envelope("mixed_v1p2.json")
    broken = copy.deepcopy(mixed)
    broken["data"][5]["eventTime"] = "half past nine"
    path = lines(tmp_path, [mixed, broken])
    with pytest.raises(DataError, match=r"events.jsonl line 2: data\[5\].eventTime must be an ISO-8601 time"):
        load_interactions(path, "caliper")
    conflicting = copy.deepcopy(mixed)
    conflicting["data"][9]["generated"]["scoreGiven"] = 0
    path = lines(tmp_path, [mixed, conflicting], name="c.jsonl")
    with pytest.raises(DataError, match=r"c.jsonl line 2: data\[9\].id .*already used at c.jsonl line 1 data\[9\]"):
        load_interactions(path, "caliper")
    table, report = load_interactions(path, "caliper", on_error="skip")
    assert report.skipped["conflicting_event"] == 1
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(mixed) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl line 2: is not valid JSON"):
        load_interactions(bad_json, "caliper")
