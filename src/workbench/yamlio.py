"""YAML reading with YAML 1.2 booleans.

PyYAML follows YAML 1.1, where `on`, `off`, `yes`, `no` (and the country code
NO) become booleans. In a mapping file `on: {deal_id: mql_id}` must stay a key, so
only `true` and `false` are booleans here.
"""
from __future__ import annotations

import re

import yaml


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
