"""The zpd command line, in-process (CliRunner) and as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zpd.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str):
    return runner.invoke(app, list(args))


def test_graph_stats_json() -> None:
    result = run("graph", "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["standards"] == 480 and stats["prerequisite_edges"] == 757 and stats["is_dag"] is True
    assert stats["grades"]["HS"] == 163 and list(stats["grades"])[0] == "K"


def test_graph_show_json_and_alias() -> None:
    shown = json.loads(run("graph", "show", "3.NF.A.1", "--json").stdout)
    assert shown["code"] == "3.NF.A.1" and set(shown["prerequisites"]) == {"2.G.A.3", "2.MD.A.2"}
    alias = json.loads(run("graph", "show", "CCSS.Math.Content.4.NF.B.3a", "--json").stdout)
    assert alias["code"] == "4.NF.B.3.a" and alias["parent"] == "4.NF.B.3"
    parent = json.loads(run("graph", "show", "4.NF.B.3", "--json").stdout)
    assert parent["parts"] == ["4.NF.B.3.a", "4.NF.B.3.b", "4.NF.B.3.c", "4.NF.B.3.d"]


def test_graph_show_unknown_code_exits_1_with_message() -> None:
    result = run("graph", "show", "3.NF.A.9")
    assert result.exit_code == 1
    assert "unknown standard '3.NF.A.9'" in result.stderr


def test_validate_exported_case_and_cyclic_sources(tmp_path: Path) -> None:
    out = tmp_path / "cm.json"
    assert run("graph", "export-case", "-o", str(out)).exit_code == 0
    ok = run("graph", "validate", str(out))
    assert ok.exit_code == 0 and "valid: 480 standards, 757 prerequisite edges" in ok.stdout

    package = json.loads(out.read_text())
    ids = {i["humanCodingScheme"]: i["identifier"] for i in package["CFItems"]}
    package["CFAssociations"].append(
        {
            "identifier": "cycle-1",
            "associationType": "precedes",
            "originNodeURI": {"identifier": ids["3.NF.A.1"]},
            "destinationNodeURI": {"identifier": ids["2.MD.A.2"]},
        }
    )
    cyclic = tmp_path / "cyclic.json"
    cyclic.write_text(json.dumps(package))
    bad = run("graph", "validate", str(cyclic))
    assert bad.exit_code == 1
    assert "prerequisite cycle" in bad.stderr and "3.NF.A.1" in bad.stderr and "2.MD.A.2" in bad.stderr

    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "standards.csv").write_text("code\nA\nB\nC\n")
    (folder / "prerequisites.csv").write_text("prerequisite,dependent\nA,B\nB,C\nC,A\n")
    bad_csv = run("graph", "validate", str(folder))
    assert bad_csv.exit_code == 1
    assert "prerequisite cycle:" in bad_csv.stderr
    assert {"A", "B", "C"} <= set(bad_csv.stderr.split("prerequisite cycle: ")[1].strip().split(" -> "))


def test_route_json() -> None:
    result = run("graph", "route", "--mastered", "3.NF.A.1,2.MD.A.2", "--goal", "4.NF.B.3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    codes = [step["code"] for step in data["route"]]
    assert codes[-4:] == ["4.NF.B.3.a", "4.NF.B.3.b", "4.NF.B.3.c", "4.NF.B.3.d"]
    assert "3.NF.A.1" not in codes and "2.G.A.3" not in codes  # implied by mastering 3.NF.A.1
    literal = json.loads(
        run("graph", "route", "--mastered", "3.NF.A.1", "--goal", "4.NF.B.3", "--literal", "--json").stdout
    )
    assert "2.G.A.3" in [s["code"] for s in literal["route"]]


def test_catalog_commands(tmp_path: Path) -> None:
    cov = run("catalog", "coverage", "--json")
    assert cov.exit_code == 0, cov.output
    data = json.loads(cov.stdout)
    assert data["standards"] == 480 and data["modalities"]["online_practice"]["learnable_without"] == []
    assert data["learnable"]["practised"] == data["learnable"]["standards"] == 440
    links = run("--config", str(ROOT / "configs" / "coherence_links_only.toml"), "catalog", "coverage")
    assert "338 of 440 learnable standards have something that sends an answer" in links.stdout
    assert "75 (e.g. K.CC.C.7, " in links.stdout and "26 (e.g. K.CC.B.4.a, " in links.stdout
    out = tmp_path / "catalog.csv"
    assert run("catalog", "export", "-o", str(out)).exit_code == 0
    ok = run("catalog", "validate", str(out))
    assert ok.exit_code == 0 and f"valid: {data['items']} items" in ok.stdout and "withdrawn" not in ok.stdout
    lines = out.read_text().splitlines(keepends=True)
    assert lines[0].rstrip().endswith(",withdrawn") and lines[1].rstrip().endswith(",false")  # a column to edit
    retired = out.with_name("retired.csv")
    retired.write_text("".join([lines[0], lines[1].rstrip()[: -len("false")] + "true\n", *lines[2:]]))
    assert "; 1 withdrawn" in run("catalog", "validate", str(retired)).stdout
    assert "against the catalog configured now (bundled): the same items" in ok.stdout
    assert (
        "against the catalog configured now (bundled): 1 withdrawn" in run("catalog", "validate", str(retired)).stdout
    )
    # an item moved to another standard: what a deployment serving the file changes for learners
    k = next(i for i, line in enumerate(lines) if ",K.CC.A.1,online_practice," in line)
    moved = out.with_name("moved.csv")
    moved.write_text("".join([*lines[:k], lines[k].replace(",K.CC.A.1,", ",1.OA.A.1,"), *lines[k + 1 :]]))
    said = run("catalog", "validate", str(moved)).stdout
    item = lines[k].split(",")[0]
    assert f"(bundled): 1 moved to other standards ({item}); served, it folds again" in said
    broken = next(i for i, line in enumerate(lines) if ",online_practice," in line)
    lines[broken] = lines[broken].replace(",online_practice,", ",onlin_practice,")
    out.write_text("".join(lines))
    bad = run("catalog", "validate", str(out))
    assert bad.exit_code == 1
    assert f"catalog.csv line {broken + 1}: field 'modality' is 'onlin_practice'" in bad.stderr


def test_config_option_changes_the_graph(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "standards.csv").write_text("code\nA\nB\n")
    (folder / "prerequisites.csv").write_text("prerequisite,dependent\nA,B\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[graph]\nsource = "{folder.as_posix()}"\n')
    stats = json.loads(run("--config", str(config), "graph", "stats", "--json").stdout)
    assert stats["standards"] == 2 and stats["prerequisite_edges"] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[graph]\nunknown = 1\n")
    result = run("--config", str(bad), "graph", "stats")
    assert result.exit_code == 1 and "graph.unknown" in result.stderr


def test_help_everywhere() -> None:
    for args in (["--help"], ["graph", "--help"], ["graph", "route", "--help"], ["catalog", "coverage", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "Usage" in result.stdout


@pytest.mark.skipif(
    shutil.which("zpd", path=str(Path(sys.executable).parent)) is None, reason="console script not installed"
)
@pytest.mark.slow  # starts the console script in a subprocess
def test_installed_console_script() -> None:
    exe = shutil.which("zpd", path=str(Path(sys.executable).parent))
    done = subprocess.run([exe, "graph", "stats", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["standards"] == 480


def test_simulate_a_world_and_its_errors() -> None:
    result = run(
        "simulate",
        "--world",
        "chain",
        "--regime",
        "wrong",
        "--learners",
        "6",
        "--model",
        "bkt",
        "--planners",
        "topo,zpd,oracle",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["planners"]) == {"topo", "zpd", "oracle"} and out["settings"]["horizon"] == 100
    assert out["settings"]["regime"] == "wrong" and out["settings"]["permuted"] >= 2
    assert out["planners"]["oracle"]["learning_gain"] >= out["planners"]["topo"]["learning_gain"]
    bad = run("simulate", "--world", "maze", "--model", "bkt")
    assert bad.exit_code == 1 and "unknown world 'maze'" in bad.output
    # not a terminal: one progress line per planner, at its end (no carriage returns in a log)
    logged = run("simulate", "--planners", "random,topo", "--learners", "3", "--horizon", "5", "--model", "bkt")
    assert logged.exit_code == 0, logged.output
    assert "\r" not in logged.stderr and "random: 3 learners\ntopo: 3 learners\n" in logged.stderr


def test_simulate_classes_and_its_errors() -> None:
    """A class taught for two days by each class planner; bad settings are named."""
    args = ["simulate-classes", "--classes", "1", "--class-size", "4", "--days", "2", "--model", "bkt"]
    result = run(*args, "--capacities", "online_practice=2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out["planners"]) == ["rotation", "rotation-each-block", "playlists", "whole-class"]
    assert out["settings"]["capacities"] == {"online_practice": 2} and out["settings"]["goal_size"] == 34
    rotation = out["planners"]["rotation"]
    assert 0.0 <= rotation["learning_gain"] <= 1.0 and rotation["minutes_per_day"] == 60.0
    assert "gain_vs_baseline" in out["planners"]["whole-class"] and "gain_vs_baseline" not in rotation
    assert "rotation: 1/1 classes" in result.stderr
    table = run(*args, "--planners", "rotation,whole-class")
    assert table.exit_code == 0 and "whole-class" in table.stdout and "rotation-each-block" not in table.stdout
    unknown = run(*args, "--planners", "rotation,lecture")
    assert unknown.exit_code == 1 and "unknown class planner(s) lecture" in unknown.output
    seats = run(*args, "--capacities", "computers=6")
    assert seats.exit_code == 2 and "--capacities" in seats.output and "online_practice" in seats.output
    longer = run(*args, "--block-minutes", "90")
    assert longer.exit_code == 2 and "longer than the session" in longer.output


# ---------------------------------------------------------------------------- real exports, hostile paths
DATA = Path(__file__).resolve().parent / "engine" / "data"


def test_validate_an_edge_list_with_a_column_mapping(tmp_path: Path) -> None:
    edges = str(DATA / "edgelist_exercises.csv")
    ok = run("graph", "validate", edges, "--columns", "prerequisite=requires,dependent=exercise")
    assert ok.exit_code == 0, ok.output
    assert "valid: 6 standards, 5 prerequisite edges" in ok.stdout
    assert "warning: no standards table: 6 standards inferred from the codes in edgelist_exercises.csv" in ok.stdout
    mapping = tmp_path / "columns.json"
    mapping.write_text('{"prerequisite": "requires", "dependent": "exercise"}')
    shown = run("graph", "show", "Add_Within_20", "--graph", edges, "--columns", str(mapping), "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["prerequisites"] == ["add_within_20"]
    unmapped = run("graph", "validate", edges)
    assert unmapped.exit_code == 1 and "missing column(s) prerequisite, dependent" in unmapped.stderr
    bad = run("graph", "validate", edges, "--columns", "from=requires")
    assert bad.exit_code == 1 and "expected role=column pairs" in bad.stderr


def test_validate_a_folder_with_only_prerequisites_and_codes_differing_in_case() -> None:
    result = run("graph", "validate", str(DATA / "csvgraph_edges_only"))
    assert result.exit_code == 0, result.output
    assert "valid: 4 standards, 3 prerequisite edges" in result.stdout
    excel = run("graph", "stats", "--graph", str(DATA / "csvgraph_excel_bom"), "--json")
    assert excel.exit_code == 0, excel.output
    assert json.loads(excel.stdout)["standards"] == 4


def test_codes_option_and_setting(tmp_path: Path) -> None:
    utf16 = str(DATA / "csvgraph_utf16")
    assert run("graph", "validate", utf16).exit_code == 0
    exact = run("graph", "validate", utf16, "--codes", "exact")
    assert exact.exit_code == 1 and "names unknown standard 'CCSS.Math.Content.4.NF.B.3'" in exact.stderr
    bad = run("graph", "validate", utf16, "--codes", "loose")
    assert bad.exit_code == 1 and "--codes must be one of ccss, exact, got 'loose'" in bad.stderr
    config = tmp_path / "c.toml"
    config.write_text(f'[graph]\nsource = "{Path(utf16).as_posix()}"\ncodes = "exact"\n')
    configured = run("--config", str(config), "graph", "stats")
    assert configured.exit_code == 1 and "CCSS.Math.Content.4.NF.B.3" in configured.stderr


def test_file_in_another_encoding_is_one_clear_error() -> None:
    result = run("graph", "validate", str(DATA / "csvgraph_big5"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {DATA / 'csvgraph_big5' / 'standards.csv'} line 3: is not valid UTF-8")
    assert "expected UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark" in result.stderr
    assert isinstance(result.exception, SystemExit)  # one line from the command, not an exception


def test_catalog_in_another_encoding_names_the_file(tmp_path: Path) -> None:
    catalog = tmp_path / "items.csv"
    catalog.write_bytes("id,title,standards,modality,duration_minutes\ni1,數學,3.NF.A.1,video,5\n".encode("big5"))
    result = run("catalog", "validate", str(catalog))
    assert result.exit_code == 1 and f"error: {catalog} line 2: is not valid UTF-8" in result.stderr
    catalog.write_bytes("id,title,standards,modality,duration_minutes\r\ni1,數學,3.NF.A.1,video,5\r\n".encode("utf-16"))
    assert run("catalog", "validate", str(catalog)).exit_code == 0


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["graph", "export-case"], "a CASE package .json file"),
        (["catalog", "export"], "a catalog .csv or .json file"),
    ],
)
def test_output_files_are_checked_before_any_work(tmp_path: Path, command: list[str], expected: str) -> None:
    missing = tmp_path / "missing" / "dir" / "out.json"
    result = run(*command, "-o", str(missing))
    assert result.exit_code == 1
    assert f"error: {missing}: folder {missing.parent} does not exist; expected {expected}" in result.stderr
    folder = run(*command, "-o", str(tmp_path))
    assert folder.exit_code == 1 and f"error: {tmp_path}: is a folder; expected {expected}" in folder.stderr
    under_file = tmp_path / "file.txt"
    under_file.write_text("x")
    nested = run(*command, "-o", str(under_file / "out.json"))
    assert nested.exit_code == 1 and f"{under_file} is not a folder" in nested.stderr
    assert not missing.parent.exists() and under_file.read_text() == "x"


def test_train_output_that_is_a_file_is_refused_before_training(tmp_path: Path) -> None:
    taken = tmp_path / "model"
    taken.write_text("not a folder")
    data = Path(__file__).resolve().parents[1] / "data" / "kt_sample" / "assist2015"
    result = run(
        "train", "--data", str(data), "--format", "akt", "--fold", "1", "--model", "logistic", "--output", str(taken)
    )
    assert result.exit_code == 1
    assert f"error: {taken}: is a file; expected a folder for the model and its plots" in result.stderr


def test_training_csv_in_another_encoding_names_the_file(tmp_path: Path) -> None:
    data = tmp_path / "answers.csv"
    data.write_bytes("learner,item,correct\nu1,數,1\n".encode("big5"))
    mapping = tmp_path / "columns.json"
    mapping.write_text('{"learner": "learner", "item": "item", "correct": "correct"}')
    result = run("train", "--data", str(data), "--format", "csv", "--columns", str(mapping), "--model", "logistic")
    assert result.exit_code == 1
    assert (
        "error: answers.csv line 2: is not valid UTF-8" in result.stderr
        and "UTF-16 with a byte-order mark" in result.stderr
    )


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "--check"],
        ["keys", "list", "--tenant", "t"],
        ["catalog", "validate", "CATALOG"],
    ],
)
def test_a_store_out_of_reach_is_one_error_line(tmp_path: Path, command: list[str]) -> None:
    """A Redis store connects on first use: a command that is given one out of reach says so in
    one line, whatever it does first, rather than with a traceback."""
    from tests.serving.conftest import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    if "CATALOG" in command:
        assert run("catalog", "export", "-o", str(tmp_path / "c.csv")).exit_code == 0
        command = [str(tmp_path / "c.csv") if part == "CATALOG" else part for part in command]
    result = run(*command, "--store", url)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"error: Redis store {url} is unavailable" in result.stderr
