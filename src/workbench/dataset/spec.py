"""`dataset.yaml`: how a source maps onto the canonical data model.

A spec names, per canonical table, where its rows come from and how source
columns and values map onto ours. See the README for a full example; the models
below are the reference (unknown keys are errors).
"""
from __future__ import annotations

import codecs
import difflib
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from ..exceptions import SpecError, fixes
from ..yamlio import read_yaml_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Strict):
    """A CSV, Parquet or Excel file (``sheet`` for Excel), relative to the spec.

    ``delimiter`` is the one character between CSV fields (default ``,``; a tab for
    ``.tsv``); ``encoding`` the text's encoding (default UTF-8; a byte-order mark in the
    file says UTF-8 or UTF-16 by itself).
    """

    path: str
    sheet: str | int | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, v):
        if v is not None and len(v) != 1:
            raise ValueError(f"`delimiter` must be one character, e.g. \";\" or \"\\t\" (got {v!r})")
        return v

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v):
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"`encoding: {v}` is not an encoding Python knows; use e.g. utf-8, cp1252, "
                             "latin-1 or utf-16") from None
        return v


class DuckDBSource(_Strict):
    """A table or query in a DuckDB database file."""

    duckdb: str
    table: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        return self


class SQLSource(_Strict):
    """A table or query behind a SQLAlchemy URL.

    Credentials never go in the spec: put the password in the environment variable
    named by ``password_env``, or the whole URL in the variable named by ``url_env``.
    """

    url: str | None = None
    url_env: str | None = None
    password_env: str | None = None
    table: str | None = None
    query: str | None = None
    schema_: str | None = Field(default=None, alias="schema")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of `url` or `url_env`")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        return self


Source = Union[FileSource, DuckDBSource, SQLSource]


def _source_kind(v) -> str:
    """Which source model a mapping describes, by its keys, so that a mistake in one (a bad
    `delimiter:`) is reported against that model alone, not against all three."""
    if isinstance(v, dict):
        return "DuckDBSource" if "duckdb" in v else "SQLSource" if {"url", "url_env"} & set(v) else "FileSource"
    return type(v).__name__


_SOURCE_TAGS = ("FileSource", "DuckDBSource", "SQLSource")
#: A table's source: a path (shorthand for a file), a file, a DuckDB database or a SQL URL.
SourceRef = Annotated[Union[Annotated[FileSource, Tag("FileSource")], Annotated[DuckDBSource, Tag("DuckDBSource")],
                            Annotated[SQLSource, Tag("SQLSource")]], Discriminator(_source_kind)]

class Constant(_Strict):
    """The same value on every row, e.g. a creation date for a file that only has day counts."""

    constant: str


class Concat(_Strict):
    """Several source columns joined into one value, e.g. a key unique per product line."""

    concat: list[str]
    sep: str = "-"


class RowNumber(_Strict):
    """The row's own number in the source as its value: ``deal_id: {row_number: true}`` for an
    export without ids. The number is the physical line in a CSV (the header is line 1), the
    row in an Excel sheet, the 1-based row of a Parquet file or query: the line a user finds the
    deal on, stable as long as the file is not re-sorted."""

    row_number: Literal[True]


#: A canonical column fed by one source column, the first non-empty of several (a list),
#: a constant, a concatenation, or the row's number in the source.
ColumnRef = Union[str, list[str], Constant, Concat, RowNumber]


class PresentRule(_Strict):
    """Derive a value from whether another canonical column is filled."""

    present: str
    then: str
    otherwise: str


class AddDaysRule(_Strict):
    """A date that is another date plus a number of days: ``{add_days: <column>, to: created_at}``."""

    add_days: str
    to: str


DeriveRule = Union[Literal["final_stage", "clear_when_open"], PresentRule, AddDaysRule]


#: One ``strftime`` format for a date column, or several: each value must fit exactly one (or
#: several that read the same date).
DateFormats = Union[str, Annotated[list[str], Field(min_length=1)]]


class TableSpec(_Strict):
    """How one canonical table is read and mapped."""

    source: SourceRef
    columns: dict[str, ColumnRef] = {}
    values: dict[str, dict[str, str | None]] = {}
    date_formats: dict[str, DateFormats] = {}
    keep_other_columns: bool = False

    @field_validator("source", mode="before")
    @classmethod
    def _path_shorthand(cls, v):
        return {"path": v} if isinstance(v, str) else v


class JoinSpec(TableSpec):
    """Extra attributes joined onto deals: ``on`` maps a deal column to a source column."""

    on: dict[str, str]

    @field_validator("on")
    @classmethod
    def _single_key(cls, v):
        if len(v) != 1:
            raise ValueError("`on` maps exactly one deal column to one source column")
        return v


class DealsSpec(TableSpec):
    keep_other_columns: bool = True
    derive: dict[str, DeriveRule] = {}
    join: list[JoinSpec] = []


class WideStages(_Strict):
    """Stage entries held as one date column per stage on the deals source (HubSpot).

    ``entered`` is the column-name pattern with ``{stage}`` where the stage label
    stands, e.g. ``'Date entered "{stage} (Sales Pipeline)"'``.
    """

    entered: str
    deal_id: str | None = None


class HistorySpec(_Strict):
    """Stage history: a long table of entries, or wide columns on the deals source."""

    source: Optional[SourceRef] = None
    columns: dict[str, ColumnRef] = {}
    values: dict[str, dict[str, str | None]] = {}
    date_formats: dict[str, DateFormats] = {}
    keep_other_columns: bool = False
    wide: WideStages | None = None
    collapse_repeats: bool = False

    @field_validator("source", mode="before")
    @classmethod
    def _path_shorthand(cls, v):
        return {"path": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_of(self):
        if (self.source is None) == (self.wide is None):
            raise ValueError("give exactly one of `source` (a long table) or `wide` (columns on deals)")
        return self


DateOrder = Literal["auto", "iso", "day_first", "month_first"]


class DatasetSpec(_Strict):
    """The whole `dataset.yaml`."""

    name: str = "dataset"
    as_of: str | None = None
    dates: DateOrder = "auto"
    #: An IANA time zone (``Europe/Berlin``): timestamps written with a UTC offset are converted
    #: to its wall time. Default: every timestamp keeps the wall time it was written with.
    timezone: str | None = None
    #: Open deals older than this many days at `as_of` are taken as lost, closed the day they
    #: reached that age (a CRM that never closes abandoned deals); counted in a note.
    stale_after_days: Annotated[int, Field(gt=0)] | None = None
    #: How amounts are labelled in reports (``EUR``, ``USD``, ``€``); nothing is converted.
    currency: Annotated[str, Field(min_length=1, max_length=12)] | None = None
    stages: list[str] = []
    won_stages: list[str] = []
    lost_stages: list[str] = []
    deals: DealsSpec
    stage_history: HistorySpec | None = None
    accounts: TableSpec | None = None
    contacts: TableSpec | None = None
    touchpoints: TableSpec | None = None
    #: A ``quality.json`` written by `workbench.dataset.store.save_dataset`: the problems found loading
    #: the whole dataset this one was cut from, which become this dataset's report.
    quality: str | None = None

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_as_text(cls, v):
        # YAML turns 2024-06-30 into a date; keep dates as text until parsed explicitly.
        return None if v is None else str(v)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v):
        if v is None:
            return v
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"`timezone: {v}` is not a time zone Python knows; use an IANA name such as "
                             "Europe/Berlin, America/New_York or UTC") from None
        return v

    @model_validator(mode="after")
    def _stages_declared(self):
        if self.stage_history is not None and not self.stages:
            raise ValueError("`stages` must list the open stages in order when `stage_history` is given")
        names = self.stages + self.won_stages + self.lost_stages
        dupes = sorted({s for s in names if names.count(s) > 1})
        if dupes:
            raise ValueError(f"stage names appear more than once in stages/won_stages/lost_stages: {dupes}")
        return self


def _known_keys() -> list[str]:
    models = (DatasetSpec, DealsSpec, TableSpec, JoinSpec, HistorySpec, WideStages, FileSource, DuckDBSource,
              SQLSource, PresentRule, AddDaysRule, Constant, Concat, RowNumber)
    return sorted({field.alias or name for m in models for name, field in m.model_fields.items()})


def load_spec(path: str | Path) -> tuple[DatasetSpec, Path]:
    """Read and check a `dataset.yaml`; return the spec and the folder paths resolve against."""
    path = Path(path)
    if path.is_dir():
        if not (path / "dataset.yaml").exists():
            raise SpecError(f"`{path}` is a folder without a dataset.yaml. "
                            + fixes("pass the path of a dataset.yaml", "write one (see the README)"))
        path = path / "dataset.yaml"
    raw = read_yaml_mapping(path, "deals", "an example in `examples/`")
    return parse_spec(raw, origin=str(path)), path.parent.resolve()


def parse_spec(raw: dict, origin: str = "dataset.yaml") -> DatasetSpec:
    """Validate a spec given as a mapping, turning pydantic errors into one readable message."""
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal["))
                           and str(p) not in _SOURCE_TAGS)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(err["loc"][-1]), _known_keys(), n=1)
                msg = "unknown key. " + fixes(*(([f"rename it to `{close[0]}`"] if close else [])
                                                + ["check the spelling against the README's dataset.yaml"]))
            lines.append(f"  - `{loc}`: {msg}")
        raise SpecError(f"`{origin}` has {len(lines)} problem(s):\n" + "\n".join(dict.fromkeys(lines))) from None
