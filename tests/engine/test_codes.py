from __future__ import annotations

import pytest

from engine.codes import code_key
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
