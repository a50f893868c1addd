"""Write a `Dataset` to a folder that `load_dataset` reads back unchanged.

`save_dataset` writes every table as Parquet, a ``dataset.yaml`` mapping them (stages,
won and lost stages, the full dataset's ``as_of``) and ``quality.json``: what the
original load excluded, counted per reason. The yaml's ``quality:`` key names that file,
so `load_dataset` gives the slice the original load's report (`read_quality`) and reads its
tables back as they were written (`is_typed`: validated once, typed in Parquet). The runner
gives each segment's kernel such a slice, so a kernel only ever receives its own
segment's rows.

``quality.json`` keeps the problems' messages and counts but never their row numbers
or offending values: those can name deals of other segments.

A dateless dataset (`Dataset.has_dates` False) is written without its all-empty
``created_at`` and ``closed_at`` columns and without ``as_of`` unless it has one, so
that it reloads as dateless too.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..exceptions import SpecError, WorkbenchError, fixes
from .columns import DEAL_DATE_COLUMNS, TABLES
from .folders import publish
from .model import Dataset
from .problems import Problem, ValidationReport

SPEC_FILE = "dataset.yaml"
QUALITY_FILE = "quality.json"
#: The key of ``quality.json`` that says its Parquet tables hold a validated `Dataset` as written:
#: `load_dataset` reads them back typed, without mapping or checking them again (`is_typed`).
TYPED = "typed_tables"
#: The scope of a slice's report: counts are of the whole dataset, not of the slice.
WHOLE_DATASET = "the whole dataset, before it was split into segments"


def save_dataset(dataset: Dataset, folder: str | Path) -> Path:
    """Write ``dataset`` into ``folder`` (replaced as a whole once complete); return its dataset.yaml.

    Raises
    ------
    WorkbenchError
        The dataset has stage history but declares no stages (a dataset.yaml cannot say that).
    """
    layout = _Layout.of(dataset)
    return layout.write(folder, {table: _arrow(getattr(dataset, table)) for table in layout.tables})


class SliceWriter:
    """Writes slices of one dataset, each as `save_dataset` writes ``dataset.with_rows(rows)``, on threads
    of their own: the dataset's tables become Arrow once and each slice takes its rows from them, and the
    Parquet encoding, which lets go of the GIL, runs on two threads while the caller goes on (the runner
    plans the next segment meanwhile). At 1M sample deals, the overall slice and five personas' with the
    runner's planning of them: 11.1 s instead of 17.8 s. `close` waits for every slice; an error writing
    one is raised there."""

    def __init__(self, dataset: Dataset):
        from concurrent.futures import ThreadPoolExecutor

        self.whole = {table: _arrow(frame) for table in TABLES if (frame := getattr(dataset, table)) is not None}
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="workbench-slices")
        self.pending = []

    def write(self, part: Dataset, rows: Mapping[str, np.ndarray] | None, folder: str | Path) -> None:
        """Write ``part``, the dataset's rows ``rows`` (`Dataset.segment_rows`; None: all of it), to
        ``folder``; the part's frames are not held while the slice waits for its turn."""
        self.pending.append(self.pool.submit(self._write, _Layout.of(part), rows, folder))

    def _write(self, layout: "_Layout", rows: Mapping[str, np.ndarray] | None, folder: str | Path) -> Path:
        whole = self.whole
        return layout.write(folder, {table: whole[table] if rows is None else whole[table].take(rows[table])
                                     for table in layout.tables})

    def close(self, *, cancel: bool = False) -> None:
        """Wait for every slice (``cancel``: only for those being written) and let go of the tables."""
        try:
            for future in [] if cancel else self.pending:
                future.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.whole = {}


def _arrow(frame: pd.DataFrame):
    """A table as `DataFrame.to_parquet` writes it."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


@dataclass(frozen=True)
class _Layout:
    """What a slice's folder holds but its rows: the dataset.yaml, quality.json, the tables written and the
    columns left out of them."""

    spec: dict
    quality: dict
    tables: tuple[str, ...]
    dropped: dict

    @classmethod
    def of(cls, dataset: Dataset) -> "_Layout":
        spec = {"name": dataset.name, "as_of": _iso(dataset.as_of), "dates": "iso", "stages": list(dataset.stages),
                "won_stages": list(dataset.won_stages), "lost_stages": list(dataset.lost_stages)}
        if spec["as_of"] is None:
            del spec["as_of"]  # a dateless dataset without a cut-off: the reload infers none either
        if dataset.currency:
            spec["currency"] = dataset.currency
        tables, dropped = [], {}
        for table in TABLES:
            frame = getattr(dataset, table)
            if frame is None or (table == "stage_history" and frame.empty and not dataset.stages):
                continue
            if table == "stage_history" and not dataset.stages:
                raise WorkbenchError("The dataset has stage history but no `stages`, which a dataset.yaml cannot "
                                     "describe. " + fixes("declare the open stages"))
            if table == "deals" and _dateless(dataset):
                # Written, the empty date columns would read as mapped dates that every deal lacks.
                dropped[table] = list(DEAL_DATE_COLUMNS)
            tables.append(table)
            spec[table] = {"source": f"{table}.parquet", "keep_other_columns": True}
        spec["quality"] = QUALITY_FILE
        return cls(spec, {**quality_records(dataset.report), TYPED: True}, tuple(tables), dropped)

    def write(self, folder: str | Path, tables: Mapping) -> Path:
        """Write the folder, with ``tables`` (Arrow) as its Parquet files."""
        import pyarrow.parquet as pq

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for table in self.tables:
            pq.write_table(tables[table].drop_columns(self.dropped.get(table, [])), tmp / f"{table}.parquet")
        (tmp / SPEC_FILE).write_text(yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True))
        (tmp / QUALITY_FILE).write_text(json.dumps(self.quality, indent=2) + "\n")
        publish(tmp, folder)
        return folder / SPEC_FILE


def _dateless(dataset: Dataset) -> bool:
    """Deals without any date. An empty slice of dated deals counts too: it reloads as an empty
    table, an error either way."""
    return not dataset.deals[list(DEAL_DATE_COLUMNS)].notna().any().any()


def _iso(timestamp: pd.Timestamp | None) -> str | None:
    """ISO text of a timestamp (a date alone at midnight); None for NaT (a dateless dataset)."""
    if timestamp is None or pd.isna(timestamp):
        return None
    timestamp = pd.Timestamp(timestamp)
    return timestamp.date().isoformat() if timestamp == timestamp.normalize() else timestamp.isoformat()


def quality_records(report: ValidationReport) -> dict:
    """The load's problems without row numbers or values: what ``quality.json`` holds."""
    return {"excluded_rows": report.excluded_rows(),
            "problems": [{"severity": p.severity, "check": p.check, "table": p.table, "column": p.column,
                          "count": p.count, "excluded": p.excluded, "message": p.message, "fix": p.fix}
                         for p in report.problems]}


def read_quality(path: str | Path, *, source: str = "") -> ValidationReport:
    """The report a ``quality.json`` holds: the whole dataset's load, before it was split.

    Raises
    ------
    SpecError
        The file is missing or is not a ``quality.json`` written by `save_dataset`.
    """
    path = Path(path)
    try:
        quality = json.loads(path.read_text())
        problems = [Problem(**p) for p in quality["problems"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"`quality: {path.name}` in {source or 'the dataset.yaml'}: cannot read `{path}` "
                        f"({type(exc).__name__}: {exc}). "
                        + fixes("write the folder again with `workbench.dataset.store.save_dataset`",
                                "remove the `quality:` key to report this data's own load")) from None
    return ValidationReport(problems, source=source, scope=WHOLE_DATASET)


def read_table(path: str | Path) -> pd.DataFrame:
    """A table of a slice as the load left it: what `pd.read_parquet` reads, with a missing text NaN
    (Parquet gives None) and dates as nanosecond timestamps.

    Its text columns become Python strings a block of rows at a time (`readers.python_texts`), NaN
    where missing (a column with no value at all, Arrow's null type, is NaN at once). Before, pandas
    read them and a second pass looked for None in every text cell: the overall slice of 1M sample
    deals loaded in 11-11.5 s, now in 5.2-6.4 s. Every other column is pandas' own reading.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .readers import python_texts

    table = pq.read_table(path)
    kinds = {c.get("name"): c.get("numpy_type") for c in (table.schema.pandas_metadata or {}).get("columns", [])}
    text = {f.name for f in table.schema if kinds.get(f.name) == "object"
            and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_null(f.type))}
    if len(set(table.column_names)) != table.num_columns:  # repeated names (never written by `save_dataset`)
        frame = table.to_pandas()
        for i in range(frame.shape[1]):
            frame.isetitem(i, _as_loaded(frame.iloc[:, i]))
        return frame
    rest = table.drop_columns(list(text)).to_pandas()
    columns = {name: (np.full(table.num_rows, np.nan, dtype=object) if pa.types.is_null(table[name].type)
                      else python_texts(table[name])) if name in text else _as_loaded(rest[name]).array
               for name in table.column_names}
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows), copy=False)


def _as_loaded(col: pd.Series) -> pd.Series:
    """A column pandas read from Parquet as a load leaves it: a missing text NaN, dates in nanoseconds."""
    if col.dtype == object and col.isna().any():
        return col.where(col.notna(), np.nan)
    if isinstance(col.dtype, np.dtype) and col.dtype.kind == "M" and col.dtype != "datetime64[ns]":  # no time zone
        return col.astype("datetime64[ns]")
    return col


def is_typed(path: str | Path) -> bool:
    """Whether a ``quality.json`` comes with typed tables written by `save_dataset` (a slice the
    run wrote), which need no second mapping or validation."""
    try:
        return json.loads(Path(path).read_text()).get(TYPED) is True
    except (OSError, ValueError, AttributeError):
        return False  # read_quality says what is wrong with it


def fingerprint(dataset: Dataset, *, rows: dict[str, np.ndarray] | None = None) -> str:
    """sha256 of the data: every table's columns, dtypes and values, the stages and ``as_of``
    (null when NaT, as for a dateless dataset).

    Independent of file formats and row storage, so a slice and its reload agree. ``rows``: the
    tables' `row_hashes` when known, e.g. a segment's taken from its whole dataset's (a row's hash
    depends on that row alone), which saves hashing its rows again.
    """
    h = hashlib.sha256()
    h.update(json.dumps([_iso(dataset.as_of), dataset.stages, dataset.won_stages, dataset.lost_stages]).encode())
    for table in TABLES:
        frame = getattr(dataset, table)
        if frame is None:
            continue
        h.update(json.dumps([table, list(frame.columns), [str(t) for t in frame.dtypes]]).encode())
        if rows is None:
            hashes = _row_hashes(frame)
        elif len(hashes := rows[table]) != len(frame):
            raise ValueError(f"{len(hashes)} row hashes given for the {len(frame)} rows of {table}")
        h.update(hashes.tobytes())
    return h.hexdigest()


def row_hashes(dataset: Dataset) -> dict[str, np.ndarray]:
    """One hash per row of each table present (what `fingerprint` hashes); those of a segment
    (`Dataset.segment_rows`) are these at its rows."""
    return {table: _row_hashes(frame) for table in TABLES if (frame := getattr(dataset, table)) is not None}


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """``pd.util.hash_pandas_object(frame, index=False)``'s values, the same numbers (so fingerprints
    of earlier runs still match), computed without its costliest step.

    For a text column pandas factorizes the values, hashes each distinct value once and wraps the
    codes in a `Categorical` whose construction checks that the distinct values are distinct: a
    second hash table over them, half of a million-deal fingerprint. Here the codes are used
    directly; every other column is hashed by pandas itself. `tests/test_store.py` pins the equality.
    """
    if frame.shape[1] == 0:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    # pandas' `combine_hash_arrays` (CPython's tuple hash, column by column), private to pandas.
    n = frame.shape[1]
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, (_, column) in enumerate(frame.items()):
        out ^= _column_hashes(column._values)
        out *= mult
        mult += np.uint64(82520 + 2 * (n - i))
    out += np.uint64(97531)
    return out


def _column_hashes(values) -> np.ndarray:
    """`pandas.util.hash_array` of one column's values (``categorize=True``, its default): the same
    numbers whichever way they are computed, a missing value hashed as the largest uint64."""
    if not (isinstance(values, np.ndarray) and values.dtype == object):
        return pd.util.hash_array(values)
    if (len(pd.unique(values[:_SAMPLE])) > _MOSTLY_DISTINCT * min(len(values), _SAMPLE)
            and pd.api.types.infer_dtype(values, skipna=True) == "string"):
        # Mostly distinct texts (ids): each value hashed as it comes, without the hash table that finds the
        # distinct ones (for 1M sample deals' 3.3M contact ids 0.3 s instead of 1.7 s). Texts only: that
        # table takes 1 and True, say, for one value.
        out = pd.util.hash_array(values, categorize=False)
        out[pd.isna(values)] = np.iinfo(np.uint64).max
        return out
    # pandas' own steps for an object array (`pandas.core.util.hashing._hash_ndarray`, then
    # `Categorical._hash_pandas_object`), without building the Categorical.
    codes, uniques = pd.factorize(values, sort=False)
    hashed = pd.util.hash_array(np.asarray(pd.Index(uniques)._values), categorize=False)
    out = hashed.take(codes) if len(hashed) else np.zeros(len(codes), dtype="uint64")
    missing = codes == -1
    if missing.any():
        out[missing] = np.iinfo(np.uint64).max
    return out


#: `_column_hashes` looks at a column's first `_SAMPLE` values: when more than `_MOSTLY_DISTINCT` of them
#: are distinct, finding the distinct values of the whole column costs more than it saves.
_SAMPLE = 20_000
_MOSTLY_DISTINCT = 0.3
