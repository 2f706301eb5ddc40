"""Typed configuration for zpd-engine.

One :class:`ZPDConfig` is loaded once (``load_config``) from ``configs/default.toml``, optionally
merged with a user file, and passed down explicitly. Environment variables override only URLs and
secrets (see ``ENV_OVERRIDES``). This package imports no other project package.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

__all__ = [
    "CatalogConfig",
    "ConfigError",
    "DEFAULT_CONFIG_PATH",
    "ENV_OVERRIDES",
    "GraphConfig",
    "MLflowConfig",
    "StoreConfig",
    "ZPDConfig",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.toml")

#: environment variable -> (section, field). Only URLs and secrets belong here.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "ZPD_STORE_URL": ("store", "url"),
    "ZPD_MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
}


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphConfig(_Section):
    source: str = "bundled"
    prerequisite_association_types: tuple[str, ...] = ("precedes",)
    grouping_item_types: tuple[str, ...] = ("Domain", "Cluster")

    @field_validator("prerequisite_association_types")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one association type must count as a prerequisite")
        return value


class CatalogConfig(_Section):
    source: str = "bundled"
    generate_missing: bool = True


class StoreConfig(_Section):
    url: str = "sqlite:///var/zpd.db"


class MLflowConfig(_Section):
    tracking_uri: str = "sqlite:///var/mlflow.db"
    registered_model: str = "zpd-learner"


class ZPDConfig(_Section):
    graph: GraphConfig = GraphConfig()
    catalog: CatalogConfig = CatalogConfig()
    store: StoreConfig = StoreConfig()
    mlflow: MLflowConfig = MLflowConfig()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> ZPDConfig:
    """Load the default config, merge ``path`` over it, then apply URL/secret env overrides.

    >>> load_config().graph.source
    'bundled'
    """
    env = os.environ if env is None else env
    data = _read_toml(DEFAULT_CONFIG_PATH)
    source = DEFAULT_CONFIG_PATH
    if path is not None:
        source = Path(path)
        data = _merge(data, _read_toml(source))
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            data.setdefault(section, {})[key] = env[var]
    try:
        return ZPDConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: invalid configuration: {problems}") from None
