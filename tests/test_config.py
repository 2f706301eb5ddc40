from __future__ import annotations

from pathlib import Path

import pytest

from configs import ConfigError, load_config


def test_defaults_load_from_default_toml() -> None:
    cfg = load_config(env={})
    assert cfg.graph.source == "bundled"
    assert cfg.graph.prerequisite_association_types == ("precedes",)
    assert "Cluster" in cfg.graph.grouping_item_types
    assert cfg.mlflow.registered_model == "zpd-learner"


def test_user_file_overrides_only_what_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[graph]\nsource = "frameworks/texas.json"\n')
    cfg = load_config(path, env={})
    assert cfg.graph.source == "frameworks/texas.json"
    assert cfg.graph.prerequisite_association_types == ("precedes",)  # untouched default


def test_environment_overrides_urls_only(tmp_path: Path) -> None:
    cfg = load_config(env={"ZPD_STORE_URL": "redis://127.0.0.1:6390/0", "ZPD_GRAPH_SOURCE": "x"})
    assert cfg.store.url == "redis://127.0.0.1:6390/0"
    assert cfg.graph.source == "bundled"  # not a URL or secret: the environment cannot change it


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[graph]\nsorce = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value) and "graph.sorce" in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[graph\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml", env={})


def test_empty_prerequisite_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[graph]\nprerequisite_association_types = []\n")
    with pytest.raises(ConfigError, match="at least one association type"):
        load_config(path, env={})


def test_mlflow_tracking_uri_is_honoured_and_the_zpd_alias_wins() -> None:
    assert load_config(env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"}).mlflow.tracking_uri == "http://mlflow:5000"
    both = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "ZPD_MLFLOW_TRACKING_URI": "sqlite:////srv/m.db"}
    assert load_config(env=both).mlflow.tracking_uri == "sqlite:////srv/m.db"


def test_default_stores_live_in_the_data_folder_whatever_the_working_directory(tmp_path, monkeypatch) -> None:
    import configs

    project = Path(__file__).resolve().parent.parent
    monkeypatch.setattr(configs, "DATA_BASE", project)  # as outside the test suite
    here = load_config(env={})
    monkeypatch.chdir(tmp_path)
    elsewhere = load_config(env={})
    assert here.store.url == elsewhere.store.url == f"sqlite:///{project / 'var' / 'zpd.db'}"
    assert elsewhere.mlflow.tracking_uri == f"sqlite:///{project / 'var' / 'mlflow.db'}"
    # a config file's relative data folder is relative to that file; ZPD_DATA_DIR to where it is set
    site = tmp_path / "site"
    site.mkdir()
    (site / "zpd.toml").write_text('[serving]\ndata_dir = "state"\n')
    cfg = load_config(site / "zpd.toml", env={})
    assert (
        cfg.serving.data_dir == str(site / "state")
        and cfg.mlflow.tracking_uri == f"sqlite:///{site / 'state' / 'mlflow.db'}"
    )
    assert load_config(env={"ZPD_DATA_DIR": "data"}).store.url == f"sqlite:///{tmp_path / 'data' / 'zpd.db'}"
