from __future__ import annotations

import pytest

from engine.codes import ccss_key, code_key
from engine.graph import Standard, StandardsGraph, UnknownStandardError


@pytest.mark.parametrize(
    "spelling",
    [
        "4.NF.B.3.a",
        "4.NF.B.3a",
        "CCSS.Math.Content.4.NF.B.3a",
        "ccss.math.content.4.nf.b.3.a",
        "http://www.corestandards.org/Math/Content/4/NF/B/3/a/",
        " 4.NF.B.3A ",
    ],
)
def test_spellings_of_a_sub_standard_share_one_key(spelling: str) -> None:
    assert code_key(spelling) == code_key("4.NF.B.3.a")


@pytest.mark.parametrize("spelling", ["HSF-IF.A.1", "HSF.IF.A.1", "CCSS.Math.Content.HSF.IF.A.1", "F-IF.A.1"])
def test_high_school_prefix_is_redundant(spelling: str) -> None:
    assert code_key(spelling) == code_key("F-IF.A.1")


def test_distinct_standards_keep_distinct_keys() -> None:
    keys = {code_key(c) for c in ["4.NF.B.3", "4.NF.B.3.a", "4.NF.B.3.b", "4.NF.B.4", "F-IF.A.1", "F-IF.A.2"]}
    assert len(keys) == 6


def test_bundled_graph_resolves_every_alias(bundled_graph) -> None:
    assert bundled_graph.resolve("CCSS.Math.Content.4.NF.B.3a") == "4.NF.B.3.a"
    assert bundled_graph.resolve("HSF-IF.A.1") == "F-IF.A.1"
    assert bundled_graph.resolve("4.nf.b.3.a") == "4.NF.B.3.a"
    for std in bundled_graph.standards.values():
        for alias in std.aliases:
            assert bundled_graph.resolve(alias) == std.code


def test_unknown_code_suggests_close_codes(bundled_graph) -> None:
    with pytest.raises(UnknownStandardError) as info:
        bundled_graph.resolve("3.NF.A.9")
    assert "unknown standard '3.NF.A.9'" in str(info.value)
    assert "did you mean" in str(info.value) and "3.NF.A." in str(info.value)


def test_two_codes_with_one_key_are_refused() -> None:
    from engine.graph import GraphError

    with pytest.raises(GraphError, match=r"'4.NF.B.3a' and '4.NF.B.3.a' are two spellings"):
        StandardsGraph([Standard("4.NF.B.3a"), Standard("4.NF.B.3.a")], [])


# ---------------------------------------------------------------------------- which codes normalize
@pytest.mark.parametrize(
    "code",
    ["number_sense_weight_l1", "Fractions_Intro", "N-1-2", "add within 20", "A1", "MP.1"],
)
def test_codes_that_are_not_ccss_spellings_are_exact(code: str) -> None:
    assert ccss_key(code) is None
    assert code_key(code) == code
    assert code_key(f" {code} ") == code


def test_exercises_differing_in_case_are_two_standards() -> None:
    graph = StandardsGraph(
        [Standard("number_sense_weight_l1"), Standard("number_sense_weight_L1"), Standard("number_sense_weight_l2")],
        [("number_sense_weight_l1", "number_sense_weight_l2"), ("number_sense_weight_L1", "number_sense_weight_l2")],
    )
    assert graph.resolve("number_sense_weight_L1") == "number_sense_weight_L1"
    assert graph.resolve("number_sense_weight_l1") == "number_sense_weight_l1"
    assert "NUMBER_SENSE_WEIGHT_L1" not in graph
    with pytest.raises(UnknownStandardError) as info:
        graph.resolve("Number_Sense_Weight_L2")
    assert "did you mean number_sense_weight_l2," in str(info.value)  # the closest first


def test_exact_style_compares_ccss_codes_as_written() -> None:
    assert code_key("4.NF.B.3a", "exact") != code_key("4.NF.B.3.a", "exact")
    graph = StandardsGraph(
        [Standard("4.NF.B.3a"), Standard("4.NF.B.3.a")], [("4.NF.B.3a", "4.NF.B.3.a")], codes="exact"
    )
    assert graph.codes == "exact" and len(graph) == 2
    assert "4.nf.b.3.a" not in graph and graph.resolve("4.NF.B.3a") == "4.NF.B.3a"


def test_the_bundled_graph_compares_ccss_spellings(bundled_graph) -> None:
    assert bundled_graph.codes == "ccss"
    assert all(ccss_key(code) is not None for code in bundled_graph.standards)


def test_an_unknown_code_style_is_refused() -> None:
    from engine.graph import GraphError

    with pytest.raises(GraphError, match=r"codes must be one of ccss, exact, got 'loose'"):
        StandardsGraph([Standard("A")], [], codes="loose")  # type: ignore[arg-type]
