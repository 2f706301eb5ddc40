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
