"""YAML reading with YAML 1.2 booleans.

PyYAML follows YAML 1.1, where `on`, `off`, `yes`, `no` (and the country code
NO) become booleans. In a mapping file `on: {deal_id: mql_id}` must stay a key, so
only `true` and `false` are booleans here.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from .exceptions import SpecError, fixes


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def read_yaml(text: str):
    """Parse YAML text with only true/false as booleans."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_yaml_mapping(path: Path, needs: str, example: str) -> dict:
    """Read a YAML file that must hold a mapping; a clear `SpecError` otherwise.

    ``needs`` names the key the mapping must at least have, ``example`` a file to start from.
    """
    if not path.exists():
        raise SpecError(f"`{path}` does not exist. " + fixes("check the path", f"start from {example}"))
    try:
        raw = read_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"`{path}` is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"`{path}` must be a mapping with at least a `{needs}` key.")
    return raw
