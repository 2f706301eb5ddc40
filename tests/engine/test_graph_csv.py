"""The CSV graph loader: the bundled Coherence Map's invariants and every error path."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from engine.graph import GraphError
from engine.graph_csv import load_csv_graph, write_csv_graph

HEADER = "code,ccss_code,grade,grade_num,parent_code,description\n"


def make_folder(
    tmp_path: Path, standards: str, prerequisites: str, related: str | None = None, name: str = "framework"
) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "standards.csv").write_text(standards)
    (folder / "prerequisites.csv").write_text(prerequisites)
    if related is not None:
        (folder / "related.csv").write_text(related)
    return folder


# ---------------------------------------------------------------------------- the bundled graph
def test_coherence_map_counts(bundled_graph) -> None:
    assert len(bundled_graph.internal_codes) == 480
    assert bundled_graph.prereq.number_of_edges() == 757
    assert len(bundled_graph.related) == 142
    assert nx.is_directed_acyclic_graph(bundled_graph.prereq)


def test_coherence_map_has_no_edge_into_a_lower_grade(bundled_graph) -> None:
    down = [
        (a, b)
        for a, b in bundled_graph.prereq.edges
        if bundled_graph.standards[a].grade_num > bundled_graph.standards[b].grade_num
    ]
    assert down == []


def test_coherence_map_hierarchy(bundled_graph) -> None:
    assert bundled_graph.parts["4.NF.B.3"] == ("4.NF.B.3.a", "4.NF.B.3.b", "4.NF.B.3.c", "4.NF.B.3.d")
    assert bundled_graph.standards["4.NF.B.3.a"].parent == "4.NF.B.3"
    assert len(bundled_graph.parts) == 40
    assert bundled_graph.learning.number_of_nodes() == 480 - 40
    assert nx.is_directed_acyclic_graph(bundled_graph.learning)


def test_coherence_map_known_prerequisites(bundled_graph) -> None:
    assert set(bundled_graph.prereq.predecessors("3.NF.A.1")) == {"2.G.A.3", "2.MD.A.2"}
    std = bundled_graph["F-IF.A.1"]
    assert std.grade == "HS" and std.grade_num == 9 and "HSF-IF.A.1" in std.aliases


# ---------------------------------------------------------------------------- errors
def test_missing_column_names_file_and_expected_columns(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "id,grade\nA,1\n", "prerequisite,dependent\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    assert "standards.csv: missing column(s) code" in str(info.value)
    assert "found: id, grade" in str(info.value)


def test_missing_edge_column(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "A,,1,,,\nB,,2,,,\n", "from,to\nA,B\n")
    with pytest.raises(GraphError, match=r"prerequisites.csv: missing column\(s\) prerequisite, dependent"):
        load_csv_graph(folder)


def test_duplicate_code_names_both_lines(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "A,,1,,,\nB,,2,,,\nA,,3,,,\n", "prerequisite,dependent\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    assert str(info.value) == "standards.csv line 4: duplicate standard code 'A' (first defined on line 2)"


def test_line_numbers_count_multiline_fields(tmp_path: Path) -> None:
    standards = HEADER + 'A,,1,,,"two\nlines"\nB,,2,,,\nA,,3,,,\n'
    folder = make_folder(tmp_path, standards, "prerequisite,dependent\n")
    with pytest.raises(
        GraphError, match=r"standards.csv line 5: duplicate standard code 'A' \(first defined on line 2\)"
    ):
        load_csv_graph(folder)


def test_edge_to_unknown_standard_names_line_and_column(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "A,,1,,,\nB,,2,,,\n", "prerequisite,dependent\nA,B\nB,Z9\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    assert "prerequisites.csv line 3: column 'dependent' names unknown standard 'Z9'" in str(info.value)


def test_self_loop_names_line(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "A,,1,,,\nB,,2,,,\n", "prerequisite,dependent\nA,A\n")
    with pytest.raises(GraphError, match=r"prerequisites.csv line 2: self-loop, 'A' is linked to itself"):
        load_csv_graph(folder)


def test_cycle_lists_the_codes_on_it(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        HEADER + "A,,1,,,\nB,,1,,,\nC,,1,,,\nD,,1,,,\n",
        "prerequisite,dependent\nD,A\nA,B\nB,C\nC,A\n",
    )
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    message = str(info.value)
    assert "prerequisite cycle" in message and "prerequisites.csv" in message
    cycle = message.split("prerequisite cycle: ")[1].split(" -> ")
    assert set(cycle) == {"A", "B", "C"} and cycle[0] == cycle[-1] and "D" not in cycle


def test_edge_between_a_standard_and_its_part_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "P,,1,,,\nP.a,,1,,P,\n", "prerequisite,dependent\nP,P.a\n")
    with pytest.raises(GraphError, match=r"P -> P.a joins a standard and its own part"):
        load_csv_graph(folder)


def test_bad_grade_number_and_unknown_parent(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "A,,1,one,,\n", "prerequisite,dependent\n")
    with pytest.raises(GraphError, match=r"standards.csv line 2: column 'grade_num' must be an integer, got 'one'"):
        load_csv_graph(folder)
    folder2 = make_folder(tmp_path, HEADER + "A,,1,,,\nA.a,,1,,Q,\n", "prerequisite,dependent\n", name="other")
    with pytest.raises(GraphError, match=r"standards.csv line 3: column 'parent_code' names unknown standard 'Q'"):
        load_csv_graph(folder2)


def test_empty_code_and_missing_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + ",,1,,,\n", "prerequisite,dependent\n")
    with pytest.raises(GraphError, match=r"standards.csv line 2: column 'code' is empty"):
        load_csv_graph(folder)
    with pytest.raises(GraphError, match=r"not a folder"):
        load_csv_graph(tmp_path / "nowhere")


def test_edges_may_use_any_spelling_and_duplicates_warn(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        HEADER + "4.NF.B.3,,4,,,\n4.NF.B.3.a,4.NF.B.3a,4,,4.NF.B.3,\n3.NF.A.1,,3,,,\n",
        "prerequisite,dependent\n3.NF.A.1,CCSS.Math.Content.4.NF.B.3a\n3.NF.A.1,4.NF.B.3.a\n",
        "a,b\n3.NF.A.1,4.NF.B.3\n",
    )
    graph = load_csv_graph(folder)
    assert list(graph.prereq.edges) == [("3.NF.A.1", "4.NF.B.3.a")]
    assert graph.warnings == ("prerequisites.csv line 3: repeats the edge 3.NF.A.1 -> 4.NF.B.3.a of line 2",)
    assert graph.related == frozenset({frozenset({"3.NF.A.1", "4.NF.B.3"})})


def test_grade_number_is_derived_and_extra_columns_kept(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "code,grade,strand\nA,K,geometry\nB,HS,\n", "prerequisite,dependent\nA,B\n")
    graph = load_csv_graph(folder)
    assert graph["A"].grade_num == 0 and graph["B"].grade_num == 9
    assert graph["A"].attribute("strand") == "geometry" and graph["B"].attribute("strand") is None


def test_write_csv_round_trips(bundled_graph, tmp_path: Path) -> None:
    write_csv_graph(bundled_graph, tmp_path / "copy")
    again = load_csv_graph(tmp_path / "copy")
    mine, theirs = bundled_graph.to_dict(), again.to_dict()
    # the folder name is the title of a CSV graph; everything else must match exactly
    assert {k: v for k, v in mine.items() if k not in ("title", "identifier")} == {
        k: v for k, v in theirs.items() if k not in ("title", "identifier")
    }
