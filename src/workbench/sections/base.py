"""One report subsection: computed apart, shown whole, or replaced by one plain sentence.

A notebook cell calls a section function (``cycle_time.time_to_close(settings)``) and
displays the `Section` it returns: its text, tables, figures and sentences in order.
A section whose data are missing (no stage history, no reasons, no dates...) is *not
applicable* and shows one sentence naming what is missing and the `dataset.yaml` key
that adds it; a section whose computation fails shows one sentence with the reason (the
traceback goes to stderr, which reports leave out), and every other section still
renders. A section that builds on another one that did not render says so instead.

Each displayed section also records what it showed (``record``: status, reason, the
figures `summary.json` takes, its key findings, caveats) in the metadata of its first
output, under `RECORD_KEY`. The runner reads those records back from the executed
notebooks (`workbench.run.records`), so a report and its summary are one
computation (scrapbook's ``glue`` idiom).
"""
from __future__ import annotations

import functools
import html
import io
import re
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..dataset.groups import OVERALL
from ..exceptions import SpecError, WorkbenchError, WorkbenchWarning
from ..jsonsafe import json_safe
from ..markup import inline_markdown
from ..recordkeys import DETAIL_KEY, FAILED, NOT_APPLICABLE, OK, RECORD_KEY, STATUSES
#: Figure resolution of the PNGs sections show (the inline backend's default is 72-100).
FIGURE_DPI = 110


@dataclass(frozen=True)
class Need:
    """Whether the data have what a section needs; ``reason`` says what is missing and how to add it."""

    ok: bool
    reason: str = ""


@dataclass
class Section:
    """What one subsection shows, and whether it could be shown.

    Attributes
    ----------
    key, title : str
        A name unique within its notebook (``time_to_close``) and the heading it sits under.
    status : str
        ``ok``, ``not_applicable`` (the data lack what it needs) or ``failed``.
    reason : str
        For a section that is not ``ok``: the plain sentence shown in its place.
    outputs : list of (kind, payload)
        In display order: ``text`` (one line of light Markdown), ``findings`` (sentences),
        ``html`` (a table's HTML), ``detail`` (HTML for the report's methods appendix), ``png`` (figure
        bytes, alt text).
    result : object
        The analysis result behind it (a `CycleTimes`, a `WinDrivers`...), for analysts.
    figures : dict
        Numbers for `summary.json`, JSON-safe.
    findings : list of str
        Its sentences that belong in the report's findings at the top.
    notes : list of str
        Caveats: the warnings its analyses raised, in words.
    error : str
        For a failed section: the exception, for `run.json` (reports show ``reason`` only).
    """

    key: str
    title: str
    status: str = OK
    reason: str = ""
    outputs: list = field(default_factory=list)
    result: Any = None
    figures: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    error: str = ""
    #: How this report names all its deals (`Settings.everyone`): "All deals" in tables and sentences is
    #: shown so, since in a segment's report "all deals" are the segment's.
    everyone: str = "All deals"

    @property
    def ok(self) -> bool:
        return self.status == OK

    # --- building ------------------------------------------------------------------------

    def text(self, *lines: str) -> None:
        """Paragraphs of light Markdown (``code``, **bold**, *italics*); CRM values are escaped."""
        self.outputs.extend(("text", self._scoped(line)) for line in lines if line)

    def sentences(self, sentences: Sequence[str], *, key: bool | int = False) -> None:
        """Findings as a bulleted list; ``key`` also puts them (``True``) or the first ``key`` of them in
        the report's executive summary."""
        sentences = [self._scoped(str(s)) for s in sentences if s]
        if sentences:
            self.outputs.append(("findings", sentences))
            if key:
                self.findings.extend(sentences if key is True else sentences[:key])

    def table(self, frame, *, caption: str = "", percent: Sequence[str] = (), detail: bool = False) -> None:
        """A table, formatted as every table of the reports (`workbench.tables`): ``percent`` columns
        (shares) as percentages, an infinite value (a bound never reached) as an empty cell, which the
        caption explains, no 0, 1, 2... row numbers, column names a client reads (`tables.readable`).
        ``detail`` tables go to the report's appendix."""
        import numpy as np

        from .. import tables

        if isinstance(frame, tables.Table):
            frame = frame.frame
        frame = frame.replace([np.inf, -np.inf], np.nan).replace(OVERALL, self.everyone)
        if frame.index.name is None:
            frame = frame.reset_index(drop=True)
        for column in percent:
            if column in frame:
                frame[column] = frame[column].map(tables.format_share).astype(object)
        frame = tables.readable(frame)
        kind = "detail" if detail else "html"
        if caption:
            self.outputs.append((kind, f"<p>{inline_markdown(self._scoped(caption))}</p>"))
        self.outputs.append((kind, tables.to_html(frame)))

    def _scoped(self, sentence: str) -> str:
        """A sentence with "all deals" naming this report's deals (``all Procurement deals``)."""
        if self.everyone == OVERALL:
            return sentence
        scoped = self.everyone[len("All "):]
        return re.sub(r"\b([Aa])ll deals\b", lambda m: f"{m.group(1)}ll {scoped}", sentence)

    def html(self, markup: str) -> None:
        """HTML the package built itself (a journey grid), already escaped where it holds data."""
        self.outputs.append(("html", markup))

    def figure(self, drawn, *, alt: str) -> None:
        """A figure (an Axes or a Figure) as a PNG with its alt text; the figure is closed."""
        import matplotlib.pyplot as plt

        fig = drawn.figure if hasattr(drawn, "figure") and not hasattr(drawn, "savefig") else drawn
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
        plt.close(fig)
        self.outputs.append(("png", (buffer.getvalue(), alt)))

    def record(self, **figures) -> None:
        """Numbers for `summary.json` (the same numbers this section shows)."""
        self.figures.update(json_safe(figures))

    # --- showing ------------------------------------------------------------------------

    def to_record(self) -> dict:
        return json_safe({"key": self.key, "title": self.title, "status": self.status, "reason": self.reason,
                          "figures": self.figures, "findings": self.findings, "notes": self.notes,
                          "error": self.error})

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for i, bundle in enumerate(self._bundles()):
            bundle, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
            if i == 0:
                metadata = {**metadata, RECORD_KEY: self.to_record()}
            display(bundle, raw=True, metadata=metadata)

    def _bundles(self) -> list[dict]:
        """One MIME bundle per output; a section not shown gives its reason, and caveats come last."""
        import base64

        if not self.ok:
            return [_text_bundle(self.reason, css="wb-not-shown")]
        bundles = []
        for kind, payload in self.outputs:
            if kind == "text":
                bundles.append(_text_bundle(payload))
            elif kind == "findings":
                items = "".join(f"<li>{inline_markdown(s)}</li>" for s in payload)
                bundles.append({"text/html": f'<ul class="wb-sentences">{items}</ul>',
                                "text/plain": "\n".join(f"- {s}" for s in payload)})
            elif kind in ("html", "detail"):
                bundle = {"text/html": payload, "text/plain": "(table)"}
                bundles.append((bundle, {DETAIL_KEY: self.title}) if kind == "detail" else bundle)
            elif kind == "png":
                data, alt = payload
                bundles.append({"image/png": base64.b64encode(data).decode("ascii"), "text/plain": alt})
        if self.notes:
            items = "".join(f"<li>{inline_markdown(n)}</li>" for n in self.notes)
            bundles.append({"text/html": f'<ul class="wb-notes">{items}</ul>',
                            "text/plain": "\n".join(f"Note: {n}" for n in self.notes)})
        return bundles or [_text_bundle("There is nothing to show here for this data.", css="wb-not-shown")]

    def __repr__(self) -> str:
        detail = f": {self.reason}" if self.reason else f", {len(self.outputs)} outputs"
        return f"<Section {self.key!r} {self.status}{detail}>"


def _text_bundle(line: str, css: str = "") -> dict:
    cls = f' class="{css}"' if css else ""
    return {"text/html": f"<p{cls}>{inline_markdown(line)}</p>", "text/plain": line}


def verdict(exc: BaseException) -> tuple[str, str]:
    """(status, sentence) for a computation that raised.

    The workbench's own errors about the data ("fewer than two levels with 30+ deals: nothing
    to compare. Try 1) ...") mean the part does not apply to these data, and their message, fixes
    included, is the sentence. A wrong setting (`SpecError`) or any other exception is a failure;
    an unexpected error is named by its type only (the detail goes to `run.json` and stderr).
    """
    if isinstance(exc, WorkbenchError) and not isinstance(exc, SpecError):
        return NOT_APPLICABLE, f"This part does not apply to these data: {str(exc).strip()}"
    if isinstance(exc, SpecError):
        return FAILED, f"This part could not be computed: {str(exc).strip()}"
    return FAILED, ("This part could not be computed because of an unexpected error in the workbench "
                    f"({type(exc).__name__}); the other parts of the report are not affected.")


def section(title: str, *, needs: Sequence[Callable] = (), builds_on: str | None = None):
    """Make ``build(out, *args)`` a section function: ``f(*args) -> Section``.

    ``needs`` are functions of the first argument (the `Settings`) returning a `Need`; the
    first unmet one makes the section not applicable. An argument that is itself a `Section`
    is passed on as its ``result``; if it did not render, neither does this section
    (``builds_on`` names that section's title, for the README's table).
    Exceptions and warnings are caught: the section fails alone, warnings become notes.
    """
    def decorate(build):
        key = build.__name__

        @functools.wraps(build)
        def run(*args, **kwargs) -> Section:
            out = Section(key=key, title=title, everyone=getattr(args[0], "everyone", OVERALL) if args else OVERALL)
            upstream = [a for a in (*args, *kwargs.values()) if isinstance(a, Section) and not a.ok]
            if upstream:
                first = upstream[0]
                out.status = first.status
                out.reason = (first.reason if first.status == NOT_APPLICABLE else
                              f"Not shown: it builds on “{first.title}”, which could not be computed.")
                return out
            for need in needs:
                met = need(args[0])
                if not met.ok:
                    out.status, out.reason = NOT_APPLICABLE, met.reason
                    return out
            args = [a.result if isinstance(a, Section) else a for a in args]
            kwargs = {k: v.result if isinstance(v, Section) else v for k, v in kwargs.items()}
            _build(out, build, args, kwargs)
            return out

        run.needs = tuple(needs)
        run.title = title
        run.builds_on = builds_on
        return run

    return decorate


def _build(out: Section, build, args, kwargs) -> None:
    """Run one section's computation in the house figure style (CRM text in figures never read as
    mathtext); on failure, nothing half-made is shown and no figure is left open."""
    import matplotlib.pyplot as plt

    from ..plots import theme

    before = set(plt.get_fignums())
    with warnings.catch_warnings(record=True) as caught, theme():
        warnings.simplefilter("always")
        try:
            out.result = build(out, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - this section's failure, never the notebook's
            out.status, out.reason = verdict(exc)
            out.error = f"{type(exc).__name__}: {exc}"
            out.outputs.clear()
            out.findings.clear()
            out.figures.clear()
            if out.status == FAILED:
                traceback.print_exc(file=sys.stderr)
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
    # The workbench's own caveats (small samples, separation...), not libraries' deprecations.
    caveats = [str(w.message) for w in caught if issubclass(w.category, WorkbenchWarning)]
    out.notes.extend(n for n in dict.fromkeys(map(out._scoped, caveats)) if n not in out.notes)


def escape(text) -> str:
    """CRM text for HTML a section builds by hand."""
    return html.escape(str(text))


__all__ = ["Need", "Section", "section", "verdict", "RECORD_KEY", "OK", "NOT_APPLICABLE", "FAILED",
           "STATUSES", "escape"]
