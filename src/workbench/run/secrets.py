"""Secrets never reach what a run writes: every value `workbench.run.params.secret_values` names is
replaced by ``***`` in error messages (`redact`) and in every text file (`redact_file`)."""
from __future__ import annotations

import json
from pathlib import Path

from .params import secret_values


def redact(text: str) -> str:
    """The text with every secret of the environment replaced by ``***``."""
    for secret in secret_values():
        text = text.replace(secret, "***")
    return text


def redact_file(path: Path) -> None:
    """Replace every secret of the environment in a text file (as written, JSON-escaped or HTML-escaped)."""
    if path.suffix not in (".ipynb", ".html", ".json", ".txt", ".md", ".csv", ".yaml", ".log"):
        return
    original = path.read_text(errors="surrogateescape")
    text = redact_text(original)
    if text != original:
        path.write_text(text, errors="surrogateescape")


def redact_text(text: str) -> str:
    """The text of a file with every secret of the environment replaced, as written, JSON-escaped or
    HTML-escaped."""
    import html

    for secret in secret_values():
        for form in dict.fromkeys((secret, json.dumps(secret)[1:-1], html.escape(secret),
                                   json.dumps(html.escape(secret))[1:-1])):
            text = text.replace(form, "***")
    return text
