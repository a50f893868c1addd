"""What each notebook shows and what each of its sections needs from the data.

`catalog` lists, per shipped notebook and in report order, every section and the data it
needs; the README's table is written from it (tests/test_sections.py checks they agree).
"""
from __future__ import annotations

import importlib

#: The shipped notebooks, in report order, and the modules of their sections.
NOTEBOOKS = ("cycle_time", "stage_conversion", "win_loss_drivers", "customer_profile", "journey_grid")


def sections_of(notebook: str) -> list:
    """The section functions of one notebook's module, in the order they are defined."""
    module = importlib.import_module(f"workbench.sections.{notebook}")
    found = [f for f in vars(module).values() if callable(f) and hasattr(f, "needs") and f.__module__ == module.__name__]
    return sorted(found, key=lambda f: f.__wrapped__.__code__.co_firstlineno)


def catalog() -> list[dict]:
    """One row per section: ``notebook``, ``section`` (its title) and ``needs`` (labels; empty: nothing beyond deals)."""
    return [{"notebook": name, "section": f.title,
             "needs": [n.label for n in f.needs] + ([f"what “{f.builds_on}” needs"] if f.builds_on else [])}
            for name in NOTEBOOKS for f in sections_of(name)]


def markdown_table() -> str:
    """The catalog as the README shows it."""
    lines = ["| notebook | section | needs (beyond deals with an outcome) |", "| --- | --- | --- |"]
    for row in catalog():
        lines.append(f"| `{row['notebook']}` | {row['section']} | {', '.join(row['needs']) or '—'} |")
    return "\n".join(lines)
