"""Names a package exports but imports only when first used (PEP 562), so that importing one light
module of the package (`workbench.run.jobs` in a worker, `workbench.sections.settings` in the runner)
does not import every analysis with it."""
from __future__ import annotations

import sys
from importlib import import_module
from typing import Callable


def lazy_exports(package: str, modules: dict[str, str]) -> tuple[Callable, Callable]:
    """A package's ``__getattr__`` and ``__dir__`` for ``modules`` (exported name -> module path,
    relative to ``package``): the name is imported from its module on first use and kept."""

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(modules[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *modules})

    return __getattr__, __dir__
