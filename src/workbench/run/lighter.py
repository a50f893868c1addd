"""Lighter imports for the processes of a run.

jsonschema, which nbformat (and so Papermill) imports, imports `rfc3987_syntax` when it is
installed (Jupyter asks for ``jsonschema[format-nongpl]``), and that module compiles two Lark
grammars as it is imported: about 1 s in every process of a run (the run itself and each
worker), for a check of the "iri" format that no notebook schema uses. `defer_rfc3987_syntax`
puts a stand-in in its place that imports the real module on first use, so the check, when some
schema does ask for it, is unchanged.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

RFC3987_SYNTAX = "rfc3987_syntax"


def defer_rfc3987_syntax() -> None:
    """Stand in for `rfc3987_syntax` until it is used (no-op once it or jsonschema is imported, or when it
    is not installed)."""
    if RFC3987_SYNTAX in sys.modules or "jsonschema" in sys.modules or importlib.util.find_spec(RFC3987_SYNTAX) is None:
        return
    stand_in = types.ModuleType(RFC3987_SYNTAX, "Stands in for rfc3987_syntax until it is used "
                                                "(workbench.run.lighter).")

    def real() -> types.ModuleType:
        if sys.modules.get(RFC3987_SYNTAX) is stand_in:
            del sys.modules[RFC3987_SYNTAX]
        return importlib.import_module(RFC3987_SYNTAX)

    def is_valid_syntax(term: str, value: str) -> bool:
        return real().is_valid_syntax(term, value)

    def attribute(name: str):
        if name.startswith("__"):  # asked by the import system itself (`__path__`, `__file__`)
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.is_valid_syntax = is_valid_syntax  # what jsonschema imports by name
    stand_in.__getattr__ = attribute  # anything else imports the real module
    sys.modules[RFC3987_SYNTAX] = stand_in
