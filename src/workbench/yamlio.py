"""YAML reading with YAML 1.2 booleans and limits, the same for every file the workbench reads.

PyYAML follows YAML 1.1, where `on`, `off`, `yes`, `no` (and the country code
NO) become booleans. In a mapping file `on: {deal_id: mql_id}` must stay a key, so
only `true` and `false` are booleans here.

A settings file is small. A file over `MAX_BYTES`, or whose aliases would expand to more than
`MAX_NODES` values (a "billion laughs" alias bomb: a few lines that stand for billions of values,
which any code walking the result would take hours and gigabytes over), is refused before it is
built.
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


MAX_BYTES = 2_000_000
MAX_NODES = 200_000


class YAMLTooLarge(ValueError):
    """The text would expand to more values than a settings file has."""


def read_yaml(text: str):
    """Parse YAML text with only true/false as booleans, refusing alias bombs (`YAMLTooLarge`)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node)
        if expanded > MAX_NODES:
            raise YAMLTooLarge(f"its aliases expand to {expanded:,} values (more than {MAX_NODES:,})")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root) -> int:
    """How many nodes the document holds with every alias expanded, counted without expanding."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 0) for c in children)
            if sizes[id(node)] > MAX_NODES:
                return sizes[id(node)]
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def read_yaml_mapping(path: Path, needs: str, example: str) -> dict:
    """Read a YAML file that must hold a mapping; a clear `SpecError` otherwise.

    ``needs`` names the key the mapping must at least have, ``example`` a file to start from.
    """
    if not path.exists():
        raise SpecError(f"`{path}` does not exist. " + fixes("check the path", f"start from {example}"))
    if not path.is_file():
        raise SpecError(f"`{path}` is not a regular file. " + fixes("give the path of a YAML file"))
    if path.stat().st_size > MAX_BYTES:
        raise SpecError(f"`{path}` is {path.stat().st_size:,} bytes, more than a settings file holds "
                        f"({MAX_BYTES:,}). " + fixes("check that this is the right file"))
    try:
        raw = read_yaml(path.read_text())
    except YAMLTooLarge as exc:
        raise SpecError(f"`{path}` is refused: {exc}, which no settings file needs (an alias bomb?). "
                        + fixes("write the values out instead of nesting aliases")) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"`{path}` is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"`{path}` must be a mapping with at least a `{needs}` key.")
    return raw
