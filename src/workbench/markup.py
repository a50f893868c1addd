"""Text that reaches HTML: CRM values are data, never markup.

`inline_markdown` turns one line of the light Markdown the workbench writes (code spans,
bold, italics) into HTML with everything else escaped, so a stage, persona or channel
named ``<img src=x onerror=...>`` shows as text.
"""
from __future__ import annotations

import html
import re
import unicodedata

_CODE_SPAN = re.compile(r"(`[^`]+`)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def inline_markdown(text: str) -> str:
    """Escaped HTML of one line of markdown: code spans, bold and italics kept, links reduced to their text."""
    parts = []
    for i, part in enumerate(_CODE_SPAN.split(str(text))):
        if i % 2:
            parts.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            part = html.escape(_LINK.sub(r"\1", part), quote=False)
            parts.append(_EMPHASIS.sub(r"<em>\1</em>", _STRONG.sub(r"<strong>\1</strong>", part)))
    return "".join(parts)


#: Characters with a meaning in Markdown, escaped with a backslash so CRM text stays text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~>-])")
#: A spreadsheet treats a cell typed with one of these first characters as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def markdown_text(text) -> str:
    """CRM text for a Markdown file: HTML escaped and Markdown punctuation backslashed, so that
    ``<img onerror=...>``, ``[x](javascript:...)`` or ``**bold**`` show as typed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def is_formula_like(text) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (``=2+3``, ``@SUM(...)``, ``+cmd|...``)."""
    return isinstance(text, str) and text.startswith(FORMULA_STARTS)


def slugify(text: str, empty: str = "segment") -> str:
    """Lower-case ASCII words joined by ``-`` (``"Économique / Buyer"`` -> ``"economique-buyer"``): a
    folder or file name made from CRM text, which can hold anything."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or empty


def css_string(text) -> str:
    """CRM text as a quoted CSS string (a running header's `content`): every character but ASCII letters,
    digits and spaces written as a CSS escape, so nothing can close the string or the `<style>` element."""
    return '"' + "".join(ch if (ch.isascii() and ch.isalnum()) or ch == " " else f"\\{ord(ch):x} "
                         for ch in str(text)) + '"'
