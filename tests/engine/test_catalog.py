"""The content catalog: file formats, validation errors naming row and field, the bundled catalog."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from engine.catalog import Catalog, CatalogError, Item, Modality, coverage, load_catalog, save_catalog
from engine.graph import Standard, StandardsGraph
from engine.sources import CONTENT_LINKS, build_default_catalog, link_url

HEADER = "id,title,standards,modality,duration_minutes,difficulty,url,tags,language,source,mastery_check,withdrawn\n"


@pytest.fixture()
def small_graph() -> StandardsGraph:
    return StandardsGraph([Standard("A.1"), Standard("A.2"), Standard("A.2.a", parent="A.2")], [("A.1", "A.2")])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_and_json_round_trip(tmp_path: Path, small_graph) -> None:
    items = [
        Item(
            "i1",
            "Fractions game",
            ("A.1",),
            Modality.ONLINE_PRACTICE,
            12.5,
            0.4,
            "https://x.org/1",
            ("sports", "games"),
        ),
        Item("i2", "Quiz", ("A.1", "A.2"), Modality.ASSESSMENT, 10, None, None, (), "es", "generated", True),
        Item("i3", "Retired video", ("A.2",), Modality.VIDEO, 4, withdrawn=True),
    ]
    for name in ("c.csv", "c.json"):
        save_catalog(Catalog(items), tmp_path / name)
        loaded = load_catalog(tmp_path / name, small_graph)
        assert list(loaded) == items, name


def test_standards_are_resolved_against_the_graph(tmp_path: Path, bundled_graph) -> None:
    path = write(tmp_path, "c.csv", HEADER + "i1,Task,CCSS.Math.Content.4.NF.B.3a;HSF-IF.A.1,video,5,,,,,,\n")
    assert load_catalog(path, bundled_graph)["i1"].standards == ("4.NF.B.3.a", "F-IF.A.1")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("i1,,A.1,video,5,,,,,,", "c.csv line 2: field 'title' is missing; it is required"),
        ("i1,T,,video,5,,,,,,", "c.csv line 2: field 'standards' is empty"),
        ("i1,T,A.9,video,5,,,,,,", "c.csv line 2: field 'standards' names unknown standard 'A.9'"),
        ("i1,T,A.1,podcast,5,,,,,,", "c.csv line 2: field 'modality' is 'podcast'; expected one of online_practice"),
        ("i1,T,A.1,video,,,,,,,", "c.csv line 2: field 'duration_minutes' is missing"),
        ("i1,T,A.1,video,-3,,,,,,", "c.csv line 2: field 'duration_minutes' must be > 0, got -3"),
        ("i1,T,A.1,video,five,,,,,,", "c.csv line 2: field 'duration_minutes' must be a number, got 'five'"),
        (
            "i1,T,A.1,video,5,1.5,,,,,",
            "c.csv line 2: field 'difficulty' must be between 0 (easiest) and 1 (hardest), got 1.5",
        ),
        ("i1,T,A.1,video,5,,,,,,maybe", "c.csv line 2: field 'mastery_check' must be true or false, got 'maybe'"),
        ("i1,T,A.1,video,5,,,,,,,retired", "c.csv line 2: field 'withdrawn' must be true or false, got 'retired'"),
    ],
)
def test_csv_errors_name_line_and_field(tmp_path: Path, small_graph, row: str, message: str) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(write(tmp_path, "c.csv", HEADER + row + "\n"), small_graph)
    assert message in str(info.value)


def test_duplicate_id_names_both_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", HEADER + "i1,T,A.1,video,5,,,,,,\ni2,T,A.1,video,5,,,,,,\ni1,U,A.1,video,5,,,,,,\n")
    with pytest.raises(CatalogError, match=r"c.csv line 4: field 'id' repeats item id 'i1' \(first at c.csv line 2\)"):
        load_catalog(path)


def test_json_errors_name_index_and_field(tmp_path: Path, small_graph) -> None:
    good = {"id": "i1", "title": "T", "standards": ["A.1"], "modality": "video", "duration_minutes": 5}
    bad = {**good, "id": "i2", "difficulty": "hard"}
    path = write(tmp_path, "c.json", json.dumps({"items": [good, bad]}))
    with pytest.raises(CatalogError, match=r"c.json items\[1\]: field 'difficulty' must be a number, got 'hard'"):
        load_catalog(path, small_graph)
    path = write(tmp_path, "d.json", json.dumps([good, {**good, "id": "i3", "standards": "A.1", "tags": 7}]))
    with pytest.raises(CatalogError, match=r"d.json items\[1\]: field 'tags' must be a list"):
        load_catalog(path, small_graph)
    with pytest.raises(CatalogError, match=r"e.json: expected a list of items"):
        load_catalog(write(tmp_path, "e.json", '{"things": 1}'))


def test_missing_columns_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"c.csv: missing column\(s\) modality, duration_minutes"):
        load_catalog(write(tmp_path, "c.csv", "id,title,standards\n"))
    with pytest.raises(CatalogError, match=r"unknown catalog format '.xlsx'"):
        load_catalog(write(tmp_path, "c.xlsx", ""))


def test_coverage_counts_parent_items_for_parts(small_graph) -> None:
    catalog = Catalog(
        [
            Item("i1", "T", ("A.2",), Modality.SMALL_GROUP, 20),
            Item("i2", "T", ("A.2.a",), Modality.ONLINE_PRACTICE, 10),
            Item("i3", "T", ("A.2.a",), Modality.ONLINE_PRACTICE, 10),
            Item("i4", "T", ("A.1",), Modality.VIDEO, 5, withdrawn=True),  # not offered: not counted
        ]
    )
    assert coverage(catalog, small_graph) == {
        "A.1": {},
        "A.2": {"small_group": 1},
        "A.2.a": {"online_practice": 2, "small_group": 1},
    }


def test_upsert_replaces_and_reindexes() -> None:
    catalog = Catalog([Item("i1", "T", ("A.1",), Modality.VIDEO, 5)])
    catalog.upsert(Item("i1", "T2", ("A.2",), Modality.VIDEO, 5))
    assert catalog.for_standard("A.1") == [] and catalog.for_standard("A.2")[0].title == "T2"
    with pytest.raises(CatalogError, match="duplicate item id 'i1'"):
        catalog.add(Item("i1", "T3", ("A.2",), Modality.VIDEO, 5))


def test_bundled_catalog_uses_every_real_link(bundled_graph) -> None:
    catalog = build_default_catalog(bundled_graph)
    with CONTENT_LINKS.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1303
    real = [item for item in catalog if item.source == "coherence_map"]
    by_url = {item.url: item for item in real}
    assert len(by_url) == len(real) == len({link_url(r["url"]) for r in rows})  # one item per distinct link
    for row in rows:  # every link's standard is reachable from its item (directly or as prior-grade)
        item = by_url[link_url(row["url"])]
        assert row["standard"] in item.standards or f"prior-grade-for:{row['standard']}" in item.tags
    generated = [item for item in catalog if item.source == "generated"]
    assert generated and all(item.id.startswith("gen-") for item in generated)
    for code in bundled_graph.learning:  # every learnable standard has practice and a mastery check
        items = [i for owner in (code, *bundled_graph.lineage(code)) for i in catalog.for_standard(owner)]
        assert any(i.modality is Modality.ONLINE_PRACTICE for i in items), code
        assert any(i.mastery_check for i in items), code


def test_bundled_catalog_without_generated_items(bundled_graph) -> None:
    catalog = build_default_catalog(bundled_graph, generate_missing=False)
    assert all(item.source == "coherence_map" for item in catalog)
    assert len(catalog) > 1000
