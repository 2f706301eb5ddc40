"""The CSV graph loader: the bundled Coherence Map's invariants, real exports' quirks, edge lists
without a standards table, and every error path."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pytest

from configs import GraphConfig
from engine.graph import GraphError
from engine.graph_csv import EdgeColumns, load_csv_graph, load_edge_list, write_csv_graph
from engine.sources import BUNDLED, graph_from_config, load_graph

HEADER = "code,ccss_code,grade,grade_num,parent_code,description\n"
DATA = Path(__file__).resolve().parent / "data"


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
    assert message.startswith("prerequisites.csv line 5: the edge C -> A closes a cycle")
    assert "its other edges are on line(s) 3, 4" in message
    cycle = message.split("prerequisite cycle: ")[1].split(" -> ")
    assert cycle == ["A", "B", "C", "A"]


def test_edge_between_a_standard_and_its_part_names_both_rows(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "P,,1,,,\nX,,1,,,\nP.a,,1,,P,\n", "prerequisite,dependent\nX,P\nP,P.a\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    message = str(info.value)
    assert message.startswith("prerequisites.csv line 3: prerequisite edge P -> P.a joins a standard and its own part")
    assert message.endswith("(standards.csv line 4 makes P.a a part of P)")


def test_cycle_through_parts_names_the_rows_behind_it(tmp_path: Path) -> None:
    # A -> P applies to P's parts, so P.b -> A closes the cycle A -> P.b -> A.
    folder = make_folder(
        tmp_path,
        HEADER + "A,,1,,,\nP,,1,,,\nP.a,,1,,P,\nP.b,,1,,P,\n",
        "prerequisite,dependent\nA,P\nP.b,A\n",
    )
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    message = str(info.value)
    assert message.startswith(
        "prerequisites.csv line 3: the edge P.b -> A closes a cycle (its other edges are on line(s) 2)"
    )
    assert "counts for each of its parts" in message and message.endswith("prerequisite cycle: A -> P.b -> A")


def test_hierarchy_cycle_names_the_row_that_closes_it(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "A,,1,,B,\nB,,1,,C,\nC,,1,,A,\n", "prerequisite,dependent\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    assert str(info.value) == (
        "standards.csv line 4: column 'parent_code' closes a hierarchy cycle (each is a part of the next): "
        "C -> A -> B -> C"
    )


def test_two_spellings_of_one_ccss_standard_name_both_lines(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, HEADER + "4.NF.B.3a,,4,,,\nX,,4,,,\n4.NF.B.3.a,,4,,,\n", "prerequisite,dependent\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    assert str(info.value).startswith(
        "standards.csv line 4: '4.NF.B.3.a' and '4.NF.B.3a' of line 2 are two spellings of one CCSS standard"
    )
    exact = load_csv_graph(folder, codes="exact")
    assert list(exact.standards) == ["4.NF.B.3a", "X", "4.NF.B.3.a"]


def test_an_alias_naming_another_standard_names_both_lines(tmp_path: Path) -> None:
    standards = "code,aliases\nweights_1,\nweights_2,weights_1\n"
    folder = make_folder(tmp_path, standards, "prerequisite,dependent\n")
    with pytest.raises(GraphError) as info:
        load_csv_graph(folder)
    assert str(info.value).startswith(
        "standards.csv line 3: 'weights_1' names two standards, 'weights_2' here and 'weights_1' of line 2"
    )


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


# ---------------------------------------------------------------------------- real exports' quirks
def test_spreadsheet_export_with_bom_crlf_extra_columns_and_codes_differing_in_case() -> None:
    graph = load_csv_graph(DATA / "csvgraph_excel_bom")
    assert list(graph.standards) == [
        "number_sense_weight_l1",
        "number_sense_weight_L1",
        "number_sense_weight_l2",
        "Fractions_Intro",
    ]
    assert set(graph.prereq.predecessors("number_sense_weight_l2")) == {
        "number_sense_weight_l1",
        "number_sense_weight_L1",
    }
    weights = graph["number_sense_weight_l2"]
    assert weights.description == "Compare weights, level 2\r\nwith mixed units" and weights.grade_num == 3
    assert weights.attribute("Owner") == "content-team" and weights.attribute("Last edited") == "2023-05-11"
    assert graph["Fractions_Intro"].description == "Équivalent fractions – intro"


def test_crlf_lines_are_counted_like_an_editor_does(tmp_path: Path) -> None:
    folder = tmp_path / "crlf"
    folder.mkdir()
    (folder / "standards.csv").write_bytes(b'\xef\xbb\xbfcode,description\r\nA,"two\r\nlines"\r\nB,\r\nA,\r\n')
    (folder / "prerequisites.csv").write_bytes(b"prerequisite,dependent\r\n")
    with pytest.raises(
        GraphError, match=r"standards.csv line 5: duplicate standard code 'A' \(first defined on line 2\)"
    ):
        load_csv_graph(folder)


def test_utf16_with_bom_tab_separated_as_excel_saves_unicode_text() -> None:
    graph = load_csv_graph(DATA / "csvgraph_utf16")
    assert list(graph.standards) == ["3.NF.A.1", "4.NF.B.3", "4.NF.B.3a"]
    assert graph["3.NF.A.1"].description == "理解分數 1/b"
    assert list(graph.prereq.edges) == [("3.NF.A.1", "4.NF.B.3")]  # CCSS.Math.Content.4.NF.B.3 resolved


def test_big5_file_is_refused_naming_file_line_and_encoding() -> None:
    with pytest.raises(GraphError) as info:
        load_csv_graph(DATA / "csvgraph_big5")
    message = str(info.value)
    assert message.startswith(f"{DATA / 'csvgraph_big5' / 'standards.csv'} line 3: is not valid UTF-8")
    assert "expected UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark" in message


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("code\nA\n".encode("utf-16-le"), "holds NUL bytes (UTF-16 without a byte-order mark"),
        ("code\nA\n".encode("utf-32"), "is UTF-32"),
        ("code\nA\nÉ\n".encode("latin-1"), "line 3: is not valid UTF-8"),
    ],
)
def test_other_encodings_are_refused(tmp_path: Path, data: bytes, problem: str) -> None:
    folder = make_folder(tmp_path, "", "prerequisite,dependent\n")
    (folder / "standards.csv").write_bytes(data)
    with pytest.raises(GraphError, match=re.escape(problem)):
        load_csv_graph(folder)


# ---------------------------------------------------------------------------- edges without standards
def test_folder_with_only_prerequisites_infers_the_standards() -> None:
    graph = load_csv_graph(DATA / "csvgraph_edges_only")
    assert list(graph.standards) == [
        "number_sense_weight_l1",
        "number_sense_weight_l2",
        "number_sense_weight_L1",
        "fractions_intro",
    ]
    assert graph.prereq.number_of_edges() == 3 and graph.title == "csvgraph_edges_only"
    assert graph.warnings == ("no standards table: 4 standards inferred from the codes in prerequisites.csv",)


def test_inferred_standards_keep_the_first_spelling_of_a_ccss_standard(tmp_path: Path) -> None:
    folder = tmp_path / "edges"
    folder.mkdir()
    (folder / "prerequisites.csv").write_text("prerequisite,dependent\n3.NF.A.1,4.NF.B.3a\n4.NF.B.3.a,5.NF.A.1\n")
    assert list(load_csv_graph(folder).standards) == ["3.NF.A.1", "4.NF.B.3a", "5.NF.A.1"]
    assert list(load_csv_graph(folder, codes="exact").standards) == [
        "3.NF.A.1",
        "4.NF.B.3a",
        "4.NF.B.3.a",
        "5.NF.A.1",
    ]


def test_edge_list_with_a_column_mapping() -> None:
    columns = EdgeColumns(prerequisite="requires", dependent="exercise")
    graph = load_edge_list(DATA / "edgelist_exercises.csv", columns=columns)
    assert list(graph.standards) == [
        "count_to_10",
        "count_to_20",
        "add_within_10",
        "add_within_20",
        "Add_Within_20",
        "measure_length",  # a row without a prerequisite still declares its exercise
    ]
    assert graph.prereq.number_of_edges() == 5 and graph.prereq.degree("measure_length") == 0
    assert set(graph.prereq.predecessors("add_within_20")) == {"add_within_10", "count_to_20"}
    assert list(graph.prereq.predecessors("Add_Within_20")) == ["add_within_20"]
    assert graph.title == "edgelist_exercises"


def test_with_a_standards_table_an_edge_needs_both_ends(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "code\nA\nB\n", "prerequisite,dependent\nA,B\n,B\n")
    with pytest.raises(GraphError, match=r"prerequisites.csv line 3: column 'prerequisite' is empty"):
        load_csv_graph(folder)
    (folder / "related.csv").write_text("a,b\nA,Z\n")
    (folder / "prerequisites.csv").write_text("prerequisite,dependent\nA,B\n")
    with pytest.raises(
        GraphError, match=r"related.csv line 2: column 'b' names unknown standard 'Z' \(not in standards.csv\)"
    ):
        load_csv_graph(folder)


def test_edge_list_without_its_mapping_says_how_to_give_one() -> None:
    with pytest.raises(GraphError) as info:
        load_edge_list(DATA / "edgelist_exercises.csv")
    assert str(info.value) == (
        "edgelist_exercises.csv: missing column(s) prerequisite, dependent; expected a header with "
        "prerequisite, dependent (found: exercise, requires, weight, notes); a column mapping "
        "(prerequisite=COLUMN,dependent=COLUMN) names other columns"
    )


def test_edge_list_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("from,to\nA,B\n,\n")
    with pytest.raises(GraphError, match=r"edges.csv line 3: column 'from' is empty; expected a standard code"):
        load_edge_list(path, columns=EdgeColumns.parse("prerequisite=from,dependent=to"))
    path.write_text("from,to\nA,B\nB,C\nC,A\n")
    with pytest.raises(GraphError, match=r"edges.csv line 4: the edge C -> A closes a cycle"):
        load_edge_list(path, columns=EdgeColumns.parse("prerequisite=from,dependent=to"))


def test_utf16_edge_list_is_tab_separated_by_its_suffix() -> None:
    columns = EdgeColumns.parse("dependent=exercise, prerequisite=requires")
    graph = load_edge_list(DATA / "edgelist_exercises_utf16.txt", columns=columns)
    assert sorted(graph.prereq.edges) == [("count_to_10", "add_within_10"), ("count_to_10", "count_to_20")]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("prerequisite=requires,dependent=exercise", EdgeColumns("requires", "exercise")),
        ("dependent=to", EdgeColumns("prerequisite", "to")),
        ("prerequisite=a,dependent=b,delimiter=tab", EdgeColumns("a", "b", "\t")),
        ("prerequisite=a,dependent=b,delimiter=;", EdgeColumns("a", "b", ";")),
    ],
)
def test_column_mapping_spec(spec: str, expected: EdgeColumns) -> None:
    assert EdgeColumns.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("from=a", "expected role=column pairs"),
        ("prerequisite", "expected role=column pairs"),
        ("prerequisite=x,dependent=x", "prerequisite and dependent are both column 'x'"),
        ("prerequisite=,dependent=b", "the prerequisite column name is empty"),
        ("delimiter=;;", "delimiter must be one character"),
    ],
)
def test_bad_column_mapping_spec(spec: str, message: str) -> None:
    with pytest.raises(GraphError, match=re.escape(message)):
        EdgeColumns.parse(spec)


def test_load_graph_reads_every_kind_of_source(tmp_path: Path) -> None:
    columns = EdgeColumns(prerequisite="requires", dependent="exercise")
    assert len(load_graph(DATA / "edgelist_exercises.csv", columns=columns)) == 6
    assert len(load_graph(DATA / "csvgraph_edges_only")) == 4
    with pytest.raises(GraphError, match="a column mapping applies to an edge table"):
        load_graph(BUNDLED, columns=columns)
    with pytest.raises(GraphError, match="codes must be one of ccss, exact"):
        load_graph(DATA / "csvgraph_edges_only", codes="loose")  # type: ignore[arg-type]
    with pytest.raises(GraphError, match=r"no prerequisites.csv; expected prerequisites.csv"):
        load_graph(tmp_path)
    with pytest.raises(GraphError, match=r"not found; expected a folder of CSV files, an edge-list file"):
        load_graph(tmp_path / "graph.xlsx")


def test_configured_codes_and_columns_describe_the_configured_source() -> None:
    config = GraphConfig(
        source=str(DATA / "edgelist_exercises.csv"), columns={"prerequisite": "requires", "dependent": "exercise"}
    )
    assert len(graph_from_config(config)) == 6
    exact = GraphConfig(source=str(DATA / "csvgraph_utf16"), codes="exact")
    with pytest.raises(GraphError, match=r"column 'dependent' names unknown standard 'CCSS.Math.Content.4.NF.B.3'"):
        graph_from_config(exact)
    assert graph_from_config(exact, DATA / "csvgraph_utf16").codes == "ccss"  # another source: its own settings
