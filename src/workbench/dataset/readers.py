"""Read a source (file, DuckDB database, SQL URL) into a raw DataFrame of text.

Every reader returns the source's columns untouched plus `_row`: the row number a
user would look for (the line in a CSV or Excel sheet, the 1-based row elsewhere).
What is wrong with the source itself (duplicate headers, rows with too few or too
many fields, NUL bytes) comes back as `SourceIssue`s beside the frame, for the
report; what makes it unreadable (a wrong encoding or delimiter, a quote never
closed, a query that would write) raises `SourceError`. Source files are only
ever opened for reading.
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..exceptions import CredentialsError, SourceError, fixes
from .spec import DuckDBSource, FileSource, SQLSource

ROW = "_row"
#: Python's whitespace: every character `str.isspace` holds true for, what `str.strip` removes
#: (`tests/test_validate.py` checks the list against Python's own).
BLANKS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
          "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
MAX_ROWS = 200  # row numbers kept per problem, as `Checker` keeps them


@dataclass(frozen=True)
class SourceIssue:
    """A problem of the source itself, found while reading it; the loader records it in the
    report against the table the source feeds. ``fatal``: the table cannot be mapped at all."""

    severity: str
    check: str
    message: str
    fix: str = ""
    column: str | None = None
    rows: tuple[int, ...] = ()
    count: int = 0
    values: tuple[str, ...] = ()
    excluded: int = 0
    fatal: bool = False


@dataclass
class RawTable:
    """A source's rows as read, how to name the source in messages, and what was wrong with it."""

    frame: pd.DataFrame
    label: str
    issues: list[SourceIssue] = field(default_factory=list)
    #: Columns known to hold only text without surrounding blanks, or NaN: cleaning them would change
    #: nothing, so the loader skips it (`mapping.clean_text`). Empty unless the reader checked.
    stripped: frozenset[str] = frozenset()


def read_source(source, base_dir: Path) -> RawTable:
    """Read one source spec; relative paths resolve against ``base_dir``."""
    if isinstance(source, FileSource):
        return _read_file(source, base_dir)
    if isinstance(source, DuckDBSource):
        return _read_duckdb(source, base_dir)
    if isinstance(source, SQLSource):
        return _read_sql(source)
    raise SourceError(f"Unknown source {source!r}")


def _resolve(path: str, base_dir: Path) -> Path:
    resolved = (base_dir / os.path.expanduser(path)).resolve()
    if not resolved.exists():
        raise SourceError(
            f"`{path}` does not exist (looked for {resolved}). "
            + fixes("check the path in dataset.yaml; relative paths start at the folder of dataset.yaml")
        )
    # A named pipe or a device would block or never end; only stat it, never open it.
    mode = resolved.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise SourceError(
            f"`{path}` is {kind} ({resolved}), not a file: it is not read. "
            + fixes("point the source at the exported file itself",
                    "copy the data into a regular file first if it comes from a pipe")
        )
    return resolved


def _read_file(source: FileSource, base_dir: Path) -> RawTable:
    path = _resolve(source.path, base_dir)
    suffix = path.suffix.lower()
    issues: list[SourceIssue] = []
    stripped: frozenset[str] = frozenset()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            sep = source.delimiter or ("\t" if suffix == ".tsv" else ",")
            text = read_csv_text(path, sep, source.encoding, label=source.path)
            frame, issues, stripped = text.frame, text.issues, text.stripped
            first_row = None
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
            first_row = 1
        elif suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, sheet_name=source.sheet or 0, dtype=object, engine="openpyxl",
                                  keep_default_na=False, na_values=[""])
            header = pd.read_excel(path, sheet_name=source.sheet or 0, header=None, nrows=1, dtype=object,
                                   engine="openpyxl")
            names = [None if pd.isna(v) else str(v) for v in header.iloc[0]] if len(header) else []
            if len(names) == len(frame.columns):
                frame.columns = [n if n is not None else c for n, c in zip(names, frame.columns)]
            first_row = 2
        else:
            raise SourceError(
                f"`{source.path}`: cannot read files ending in `{suffix}`. "
                + fixes("export as CSV, Parquet or .xlsx", "load it into DuckDB and use a `duckdb:` source")
            )
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is reported with the file named
        raise SourceError(f"`{source.path}` could not be read: {exc}") from exc
    frame, duplicates = _unique_names(frame, letters=suffix in (".xlsx", ".xlsm"))
    issues = duplicates + issues
    if first_row is not None:
        frame[ROW] = range(first_row, first_row + len(frame))
    label = source.path + (f" (sheet {source.sheet})" if source.sheet is not None else "")
    return RawTable(frame, label, issues, stripped.intersection(frame.columns))


# --- CSV -----------------------------------------------------------------------------------------

def read_csv_text(path: Path, sep: str, encoding: str = "utf-8", *, label: str | None = None) -> RawTable:
    """Every cell as text, `_row` the record's line in the file, and what is wrong with the file.

    Only an empty cell is missing (a literal "None" or "NA" in a CRM export is a
    value, not a gap). Blank lines are dropped but still counted, and a quoted cell
    that spans lines pushes the next records down, so `_row` is the line a text
    editor shows. A byte-order mark says the encoding (UTF-8, UTF-16, UTF-32).

    A row whose number of fields differs from the header's cannot be put into
    columns: it is left out and reported (`ragged_rows`), every such row at once; when
    most rows disagree with the header, the header itself is wrong and the table is
    not mapped. NUL bytes are kept in the values and reported (`nul_bytes`).

    A UTF-8 file whose every line is one record of the header's width (the common
    case) is parsed by pyarrow's multi-threaded reader (`_read_plain`); any other file
    by pandas' C parser after a vectorised scan of the bytes (`_scan`) has counted the
    fields per line, so that what is wrong with it is found and reported
    (`_read_any`). Reading the five files of 1M sample deals (680 MB) took 6.9 s the
    first way and 11.4 s the second (2 cores; `benchmarks/bench_load.py`, `csv_read`).
    """
    label = label or path.name
    if len(sep) != 1:
        raise SourceError(f"`{label}`: the delimiter {sep!r} is not one character. "
                          + fixes('set `delimiter:` to the one character between fields, e.g. `delimiter: ";"`'))
    codec = _codec(path, encoding, label)
    return _read_plain(path, sep, codec, label) or _read_any(path, sep, codec, label, encoding)


def _read_plain(path: Path, sep: str, codec: _Codec, label: str) -> RawTable | None:
    """A UTF-8 file whose every line is one record with the header's number of fields, read block by
    block by pyarrow's streaming CSV reader (which parses the next block on another thread while this
    one becomes Python strings); None for any other file (blank lines, a line break inside a
    cell, rows of another width, NUL bytes, a lone carriage return, bytes that are not UTF-8...),
    which `_read_any` then reads and reports on, so that no message changes.

    The cells are what pandas' C parser reads (quoting, doubled quotes, blanks kept, only an empty
    cell missing: `tests/test_readers.py` compares the two on tricky files), and the columns whose
    every cell is already stripped are named in `RawTable.stripped`, found on the Arrow strings.
    """
    if codec.name not in ("utf-8", "utf-8-sig") or sep in ('"', "\n", "\r"):
        return None
    lines = _plain_lines(path)
    if lines is None:
        return None
    header = _header(path, sep, codec)
    width = len(header)
    if width < 2 or not any(h.strip() for h in header):
        return None
    names = [str(i) for i in range(width)]
    # The cells go straight into the frame's one block of objects: a frame built from columns would copy
    # them all once more (1.1 s for a frame of 5M rows and 6 columns).
    block = np.empty((width, lines - 1), dtype=object)
    stripped, rows, last = [True] * width, 0, None
    try:
        with pcsv.open_csv(
                path, read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=_ARROW_BLOCK),
                # An empty line is skipped, so the rows fall short of the lines; a row of another width
                # (a line of spaces too) is an error: `_read_any` reads either file.
                parse_options=pcsv.ParseOptions(delimiter=sep, quote_char='"', double_quote=True, escape_char=False,
                                                newlines_in_values=True, ignore_empty_lines=True),
                convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[""],
                                                    strings_can_be_null=True, quoted_strings_can_be_null=True)
        ) as reader, closing(_parsed_ahead(reader)) as batches:  # the parser thread ends before the reader
            for batch in batches:
                if rows + batch.num_rows > block.shape[1]:
                    return None
                for i, column in enumerate(batch.columns):
                    block[i, rows:rows + batch.num_rows] = _objects(column)
                    stripped[i] = stripped[i] and _is_stripped(column)
                rows += batch.num_rows
                last = batch.slice(batch.num_rows - 1) if batch.num_rows else last
    except (pa.ArrowException, OSError):  # e.g. a row of another width, bytes that are not UTF-8
        return None
    # Fewer rows than lines: a cell spans lines. A quote never closed on the last line keeps the count.
    if rows != block.shape[1] or (last is not None and _has_line_break(last)):
        return None
    frame = pd.DataFrame(block.T, dtype=object, copy=False)
    frame.columns = [h.strip() or h or f"Unnamed: {i}" for i, h in enumerate(header)]  # pandas' name for a blank one
    frame, issues = _unique_names(frame)
    frame[ROW] = np.arange(2, len(frame) + 2)
    return RawTable(frame, label, issues, frozenset(c for c, clean in zip(frame.columns, stripped) if clean))


def _parsed_ahead(reader: pcsv.CSVStreamingReader):
    """The reader's batches, each next one parsed on a thread of its own (pyarrow lets go of the GIL
    while it parses) while the caller makes Python strings of the last: the five files of 1M sample
    deals read in 4.7-4.9 s instead of 5.5-6.2 s. A parse error is raised here, as the reader raises it."""
    def parse():
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None

    with ThreadPoolExecutor(1, thread_name_prefix="workbench-csv") as parser:
        following = parser.submit(parse)
        while (batch := following.result()) is not None:
            following = parser.submit(parse)
            yield batch


def _plain_lines(path: Path) -> int | None:
    """The number of lines of a file with no NUL byte and no carriage return but before a line feed;
    None for any other."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            if block.endswith(b"\r"):
                block += f.read(1)
            if b"\0" in block or (b"\r" in block and block.count(b"\r") != block.count(b"\r\n")):
                return None
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _has_line_break(table: pa.RecordBatch) -> bool:
    return any(pc.any(pc.match_substring_regex(column, "[\r\n]")).as_py() for column in table.columns)


def _objects(column: pa.Array) -> np.ndarray:
    """An Arrow string column as pandas' C parser gives it: Python strings (one object per distinct
    value of the block), NaN where missing."""
    values = column.to_pandas().to_numpy()
    if column.null_count:
        values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return values


def python_texts(column: pa.ChunkedArray, rows: int = 1 << 16) -> np.ndarray:
    """An Arrow text column as pandas' C parser gives it (Python strings, NaN where missing), made
    ``rows`` rows at a time: each piece's distinct values become strings together, in the CPU's caches.
    The touchpoints of 1M sample deals (5.2M rows, 6 columns): 1.3 s, against 2.9 s for pyarrow's
    `to_pandas` of the whole columns."""
    out, at = np.empty(len(column), dtype=object), 0
    for chunk in column.chunks:
        for start in range(0, len(chunk), rows):
            piece = chunk.slice(start, rows)
            out[at:at + len(piece)] = _objects(piece)
            at += len(piece)
    return out


def _is_stripped(column: pa.Array) -> bool:
    """Whether no cell of an Arrow string column starts or ends with a blank that Python's
    `str.strip` removes (`BLANKS`); an empty cell is missing here, never empty text.

    Most columns are settled by their cells' first and last bytes alone, read from the Arrow
    buffers: no byte up to a space (ASCII's blanks among them) and no byte of a character beyond
    ASCII (the other blanks are such characters) there. The others are trimmed. An empty cell's
    "edges" are its neighbours' bytes: at worst a column is trimmed that need not have been."""
    _, offsets, data = column.buffers()
    bounds = np.frombuffer(offsets, np.int32)[column.offset: column.offset + len(column) + 1]
    if data is None or bounds[-1] == bounds[0]:
        return True
    text = np.frombuffer(data, np.uint8)
    for edge in (text[np.minimum(bounds[:-1], bounds[-1] - 1)], text[np.maximum(bounds[1:] - 1, bounds[0])]):
        if ((edge <= 32) | (edge >= 128)).any():
            break
    else:
        return True
    return not pc.any(cells_to_strip(column)).as_py()


def cells_to_strip(text: pa.Array) -> pa.BooleanArray:
    """Which cells of an Arrow string array `str.strip` would change or leave empty (null where missing):
    the cells cleaning must look at (`mapping.clean_text`)."""
    length = pc.binary_length(text)
    return pc.or_(pc.not_equal(pc.binary_length(pc.utf8_trim(text, characters=BLANKS)), length), pc.equal(length, 0))


def _read_any(path: Path, sep: str, codec: _Codec, label: str, declared: str) -> RawTable:
    """Any CSV: pandas' C parser, rows placed on their physical lines by `_scan`, and every
    problem of the file (ragged rows, blank lines, NUL bytes, an encoding error) found."""
    layout = _scan(path, sep, codec) or _scan_exact(path, sep, codec, label)
    if layout.unclosed_line is not None:
        raise SourceError(
            f"`{label}`: the quoted cell that opens on line {layout.unclosed_line} is never closed, so "
            "everything after it would read as one cell. "
            + fixes(f"close the quote on line {layout.unclosed_line}, or double a quote that belongs to the "
                    'text (`""`)', "export the file again: a cut export ends inside a cell"))
    if len(layout.fields) == 0:
        raise SourceError(f"`{label}` is empty: not even a header line. " + fixes("export the table again"))
    header = _header(path, sep, codec)
    width = len(header)
    if layout.blank[0] or not any(h.strip() for h in header):
        raise SourceError(f"`{label}`: line 1 is blank, but the header (the column names) must be the first line. "
                          + fixes("remove the blank lines above the header"))
    if width == 1:
        _check_delimiter(path, sep, codec, header[0], label)
    try:
        frame = _parse(path, sep, codec, width, layout.nul)
    except UnicodeDecodeError as exc:
        raise SourceError(_decode_message(path, sep, codec, layout, header, label, declared, exc)) from None
    frame.columns = [h.strip() or str(c) for h, c in zip(header, frame.columns)]
    frame, issues = _unique_names(frame)
    if len(frame) != len(layout.fields) - 1 and layout.fast:  # the fast scan misread the quoting
        layout = _scan_exact(path, sep, codec, label)
    if len(frame) != len(layout.fields) - 1:
        # Never expected: pandas and the scan disagree on where records start. Keep pandas'
        # rows and say the line numbers are an estimate rather than stop the read.
        frame[ROW] = np.arange(2, len(frame) + 2)
        issues.append(SourceIssue("note", "row_numbers_approximate", "the file's quoting could not be followed "
                                  "line by line, so row numbers count records, not lines, and rows with too few or "
                                  "too many fields could not be checked."))
        return RawTable(_drop_blank(frame), label, issues)
    lines, fields, blank = layout.lines[1:], layout.fields[1:], layout.blank[1:]
    frame[ROW] = lines
    ragged = (fields != width) & ~blank
    if ragged.any():
        issue = _ragged_issue(path, codec, layout, width, ragged, label)
        issues.append(issue)
        if issue.fatal:
            return RawTable(frame.iloc[:0], label, issues)
    keep = ~(ragged | blank)
    if not keep.all():
        frame = frame[keep].reset_index(drop=True)
    if layout.nul:
        issues += _nul_issues(frame)
    return RawTable(frame, label, issues)


@dataclass(frozen=True)
class _Codec:
    """How to decode a text file: the codec name, its code unit for the scan, and the BOM to skip."""

    name: str
    unit: str = "u1"  # numpy dtype of one code unit: u1 for ASCII-compatible codecs, <u2 / >u2 UTF-16...
    bom: int = 0

    @property
    def bare(self) -> str:
        """The codec for the bytes after the mark (the endianness spelt out)."""
        if self.unit == "u1":
            return self.name.replace("-sig", "")
        bits = 8 * int(self.unit[-1])
        return f"utf-{bits}-{'le' if self.unit[0] == '<' else 'be'}"


_BOMS = [  # longest first: a UTF-32 LE mark starts like a UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32", "<u4", "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "utf-32", ">u4", "UTF-32 (big-endian)"),
    (codecs.BOM_UTF8, "utf-8-sig", "u1", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "<u2", "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "utf-16", ">u2", "UTF-16 (big-endian)"),
]


def _codec(path: Path, declared: str, label: str) -> _Codec:
    """The codec to read with: the byte-order mark's if the file has one, else the declared one."""
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        raise SourceError(f"`{label}`: `encoding: {declared}` is not an encoding Python knows. "
                          + fixes("use e.g. `utf-8`, `cp1252`, `latin-1` or `utf-16`")) from None
    with open(path, "rb") as f:
        head = f.read(4096)
    for bom, codec, unit, what in _BOMS:
        if head.startswith(bom):
            family = codec.replace("-sig", "")
            if not name.replace("-sig", "").startswith(family) and name not in ("utf-8", "utf-8-sig"):
                raise SourceError(
                    f"`{label}` starts with a {what} byte-order mark, so it is {what} text, but dataset.yaml "
                    f"declares `encoding: {declared}`. " + fixes("remove `encoding:` from the source: the mark "
                                                                 "says what the file is"))
            return _Codec(codec, unit, len(bom))
    if name.startswith(("utf-16", "utf-32")):
        size = 2 if name.startswith("utf-16") else 4
        big = name.endswith("-be")
        return _Codec(name, (">" if big else "<") + f"u{size}", 0)
    # UTF-16 without a mark: ASCII text has a NUL byte beside every character.
    sample = head[: len(head) - len(head) % 2]
    if len(sample) >= 8 and sample.count(0) >= len(sample) // 4:
        odd = sample[1::2].count(0) > sample[0::2].count(0)
        guess = "utf-16-le" if odd else "utf-16-be"
        raise SourceError(
            f"`{label}` looks like {guess.upper()} text without a byte-order mark (every other byte is NUL), "
            f"not {declared}. " + fixes(f"set `encoding: {guess}` on the source: "
                                        f"`source: {{path: {label}, encoding: {guess}}}`",
                                        "or export the file as UTF-8"))
    return _Codec(name)


@dataclass
class _Layout:
    """Where each record of a CSV starts (physical line), how many fields it has, whether it is
    blank; whether the file holds NUL characters, and the line of a quote never closed."""

    lines: np.ndarray
    fields: np.ndarray
    blank: np.ndarray
    nul: bool = False
    unclosed_line: int | None = None
    fast: bool = True
    ends_with_newline: bool = True


_CHUNK = 1 << 24  # code units per block: bounds the scan's memory on a big export
# Bytes per block of `_read_plain`: a block's distinct values become Python strings together, and
# smaller blocks keep that work in the CPU's caches and reuse freed memory. Reading the five files of
# 1M sample deals took 5.9-7.0 s with 4 MiB blocks and 7.2-9.5 s with 16 MiB (best of 3 each, 2 cores).
_ARROW_BLOCK = 1 << 22


def _scan(path: Path, sep: str, codec: _Codec) -> _Layout | None:
    """Fields per record by counting separators and newlines outside quotes, vectorised.

    A quote toggles "inside a quoted cell"; that is how pandas reads a file whose quotes
    open cells and close them before a separator or a line end. A quote anywhere else
    (`12" screen`, text after a closing quote) or a lone carriage return as line end
    returns None: `_scan_exact` counts then. The file is read in blocks, so memory stays
    bounded on a big export.
    """
    unit = np.dtype(codec.unit)
    size = unit.itemsize
    S, Q, NL, CR = ord(sep), ord('"'), ord("\n"), ord("\r")
    starts_l, lines_l, fields_l, ends_l, crs_l = [np.array([0])], [np.array([1])], [], [], []
    lines_before, inside, carry, last_open_line, nul, prev, lo = 0, 0, 0, None, False, NL, 0
    with open(path, "rb") as f:
        f.seek(codec.bom)
        pending = f.read(_CHUNK * size)
        while len(pending) >= size:
            following = f.read(_CHUNK * size)
            c = np.frombuffer(pending, dtype=unit, count=len(pending) // size)
            nxt = int(np.frombuffer(following, dtype=unit, count=1)[0]) if len(following) >= size else -1
            if size == 1:
                nul = nul or b"\0" in pending
                has_quote = b'"' in pending
                if b"\r" in pending and pending.count(b"\r") != pending.count(b"\r\n") + (
                        pending.endswith(b"\r") and nxt == NL):
                    return None
            else:
                nul = nul or bool((c == 0).any())
                has_quote = bool((c == Q).any())
                r = np.flatnonzero(c == CR)
                if len(r) and not (np.append(c, nxt)[r + 1] == NL).all():
                    return None
            nl = np.flatnonzero(c == NL)
            if has_quote:
                is_quote = c == Q
                q = np.flatnonzero(is_quote)
                opening = ((np.arange(len(q)) + inside) & 1) == 0
                before = c[np.maximum(q - 1, 0)].astype(np.int64)
                after = c[np.minimum(q + 1, len(c) - 1)].astype(np.int64)
                before[q == 0] = prev
                after[q == len(c) - 1] = nxt
                b, a = before[opening], after[~opening]
                if not ((b == S) | (b == NL) | (b == Q)).all():
                    return None  # a quote inside an unquoted cell is a literal character
                if not ((a == S) | (a == NL) | (a == CR) | (a == Q) | (a == -1)).all():
                    return None  # text after a closing quote
                if opening.any():
                    at = q[np.flatnonzero(opening)[-1]]
                    last_open_line = lines_before + int(np.searchsorted(nl, at)) + 1
                # Quotes so far, mod 2, at every unit: a separator or line end is outside a quoted
                # cell where that parity equals the parity the block started with.
                outside = np.bitwise_xor.accumulate(is_quote.view(np.uint8)) == inside
                s = np.flatnonzero((c == S) & outside)
                rank = np.flatnonzero(outside[nl])
                inside = (inside + len(q)) & 1
            elif inside:  # the whole block lies inside one quoted cell
                s, rank = np.zeros(0, np.int64), np.zeros(0, np.int64)
            else:
                s = np.flatnonzero(c == S)
                rank = np.arange(len(nl))
            ends = nl[rank]
            per = np.diff(np.searchsorted(s, ends), prepend=0)
            if len(ends):
                per[0] += carry
                carry = len(s) - int(np.searchsorted(s, ends[-1]))
            else:
                carry += len(s)
            fields_l.append(per + 1)
            ends_l.append(ends + lo)
            crs_l.append(np.where(ends > 0, c[np.maximum(ends - 1, 0)], prev) == CR)
            starts_l.append(ends + lo + 1)
            lines_l.append(lines_before + rank + 2)
            lines_before += len(nl)
            lo += len(c)
            prev = int(c[-1])
            pending = following
    count = lo
    if count == 0:
        return _Layout(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))
    if inside:
        return _Layout(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), unclosed_line=last_open_line)
    starts = np.concatenate(starts_l)
    lines = np.concatenate(lines_l)
    ends = np.concatenate(ends_l + [np.array([count])])
    crs = np.concatenate(crs_l + [np.array([prev == CR])])
    fields = np.concatenate(fields_l + [np.array([carry + 1])])
    ends_with_newline = int(starts[-1]) >= count
    if ends_with_newline:  # nothing after the last line end: no record there
        starts, lines, ends, crs, fields = starts[:-1], lines[:-1], ends[:-1], crs[:-1], fields[:-1]
    length = ends - starts - (crs & (ends > starts))
    blank = length == 0
    # A line of spaces is blank too where the header has several fields; look only at the few
    # one-field records that are not empty.
    candidates = np.flatnonzero((fields == 1) & ~blank)[:100_000] if len(fields) and fields[0] > 1 else []
    if len(candidates):
        buf = np.memmap(path, dtype=unit, mode="r", offset=codec.bom, shape=(count,))
        for i in candidates:
            blank[i] = bool(np.isin(np.asarray(buf[starts[i]:starts[i] + length[i]]), (32, 9)).all())
        del buf
    return _Layout(lines, fields, blank, nul, None, True, ends_with_newline)


def _scan_exact(path: Path, sep: str, codec: _Codec, label: str) -> _Layout:
    """Fields per record as Python's csv module reads them, quote rules and all (slower)."""
    lines, fields, blank = [], [], []
    nul = False
    try:
        with open(path, encoding=codec.name, newline="", errors="replace") as f:
            reader = csv.reader(f, delimiter=sep, quotechar='"', doublequote=True, strict=False)
            done = 0
            for row in reader:
                lines.append(done + 1)
                fields.append(max(len(row), 1))
                # as `_scan`: a line of spaces is blank only where the header has several fields
                blank.append(not row or (len(row) == 1 and fields[0] > 1 and not row[0].strip(" \t")))
                nul = nul or any("\0" in v for v in row)
                done = reader.line_num
    except csv.Error as exc:
        raise SourceError(f"`{label}` could not be read on line {len(lines) + 1}: {exc}.") from None
    with open(path, "rb") as f:
        f.seek(-1 if path.stat().st_size else 0, os.SEEK_END)
        ends_with_newline = f.read(1) in (b"\n", b"\r")
    return _Layout(np.array(lines, np.int64), np.array(fields, np.int64), np.array(blank, bool), nul,
                   None, False, ends_with_newline)


def _header(path: Path, sep: str, codec: _Codec) -> list[str]:
    """The header's fields as written (pandas renames a repeated `amount` to `amount.1`)."""
    with open(path, encoding=codec.name, newline="", errors="replace") as f:
        return next(csv.reader(f, delimiter=sep, quotechar='"', doublequote=True, strict=False), [])


_DELIMITERS = {",": "a comma", ";": "a semicolon", "\t": "a tab", "|": "a vertical bar"}


def _check_delimiter(path: Path, sep: str, codec: _Codec, header: str, label: str) -> None:
    """A file that reads as one column because its fields are separated by another character."""
    with open(path, encoding=codec.name, newline="", errors="replace") as f:
        first = [line for _, line in zip(range(6), f)][1:]
    for other, name in _DELIMITERS.items():
        if other == sep or header.count(other) == 0:
            continue
        n = header.count(other)
        if first and sum(line.count(other) == n for line in first) < (len(first) + 1) // 2:
            continue
        shown = header if len(header) <= 60 else header[:57] + "..."
        written = '"\\t"' if other == "\t" else f'"{other}"'
        raise SourceError(
            f"`{label}` reads as a single column (`{shown}`): its fields are separated by {name} "
            f"({n + 1} columns), not by {_DELIMITERS.get(sep, repr(sep))}. "
            + fixes(f"add `delimiter: {written}` to the source: `source: {{path: {label}, delimiter: {written}}}`"))


def _parse(path: Path, sep: str, codec: _Codec, width: int, nul: bool) -> pd.DataFrame:
    options = dict(sep=sep, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False,
                   header=0, index_col=False, usecols=range(width))
    if not nul:
        return pd.read_csv(path, encoding=codec.name, **options)
    # pandas' C parser ends a value at a NUL byte (`soft\0ware` -> `soft`): read through a stand-in.
    with open(path, encoding=codec.name, newline="") as f:
        text = f.read()
    stand_in = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)
    frame = pd.read_csv(io.StringIO(text.replace("\0", stand_in)), **options)
    for column in frame.columns:
        if frame[column].str.contains(stand_in, regex=False).any():
            frame[column] = frame[column].str.replace(stand_in, "\0", regex=False)
    return frame


def _drop_blank(frame: pd.DataFrame) -> pd.DataFrame:
    blank = frame.drop(columns=ROW).isna().all(axis=1)
    return frame[~blank].reset_index(drop=True) if blank.any() else frame


def _ragged_issue(path: Path, codec: _Codec, layout: _Layout, width: int, ragged: np.ndarray,
                  label: str) -> SourceIssue:
    lines = layout.lines[1:][ragged]
    fields = layout.fields[1:][ragged]
    data = int((~layout.blank[1:]).sum())
    shown = ", ".join(f"line {line} has {n}" for line, n in zip(lines[:5], fields[:5]))
    values = _line_texts(path, codec, [int(x) for x in lines[:5]])
    cut = ""
    last = len(layout.fields) - 1
    if not layout.ends_with_newline and ragged[-1] and layout.fields[last] < width:
        cut = f" The last line ({int(layout.lines[last])}) ends early without a line end: the export looks cut off."
    if len(lines) * 2 > data:  # most rows disagree: it is the header (or the delimiter) that is wrong
        common = np.bincount(layout.fields[1:][~layout.blank[1:]]).argmax()
        return SourceIssue(
            "error", "ragged_rows",
            f"the header has {width} fields but {len(lines)} of {data} rows have a different number "
            f"({shown}; most have {common}), so no column can be trusted.{cut}",
            fixes("check that the header names every column, and the `delimiter:` of the source",
                  "remove a separator written at the end of every line", "export the table again"),
            rows=tuple(int(x) for x in lines[:MAX_ROWS]), count=len(lines), values=values, fatal=True)
    return SourceIssue(
        "warning", "ragged_rows",
        f"rows have a different number of fields from the header's {width} ({shown}), so their values "
        f"cannot be put into columns: a separator inside an unquoted value, a missing field, or a line "
        f"break inside a value.{cut}",
        fixes("quote the values that hold the separator, or correct these lines in the export",
              "export the table again if it was cut"),
        rows=tuple(int(x) for x in lines[:MAX_ROWS]), count=len(lines), values=values, excluded=len(lines))


def _line_texts(path: Path, codec: _Codec, lines: list[int], limit: int = 80) -> tuple[str, ...]:
    """The text of some physical lines, as written (cut at ``limit`` characters)."""
    wanted, out = set(lines), {}
    if not wanted:
        return ()
    with open(path, encoding=codec.name, newline="", errors="backslashreplace") as f:
        for n, line in enumerate(f, start=1):
            if n in wanted:
                text = line.rstrip("\r\n")
                out[n] = text if len(text) <= limit else text[: limit - 3] + "..."
                if len(out) == len(wanted):
                    break
    return tuple(out[n] for n in lines if n in out)


def _nul_issues(frame: pd.DataFrame) -> list[SourceIssue]:
    issues = []
    for column in frame.columns:
        if column == ROW or frame[column].dtype != object:
            continue
        hit = frame[column].str.contains("\0", regex=False, na=False)
        if hit.any():
            rows = tuple(int(r) for r in frame.loc[hit, ROW][:MAX_ROWS])
            issues.append(SourceIssue(
                "warning", "nul_bytes",
                "cells hold a NUL byte (shown as `\\x00`), which a corrupt export or a binary field leaves "
                "behind; the values are kept as written.",
                fixes("remove the NUL bytes from the export (e.g. `tr -d '\\000' < in.csv > out.csv`)",
                      "export the table again"),
                column=column, rows=rows, count=int(hit.sum()),
                values=tuple(frame.loc[hit, column].unique()[:5])))
    return issues


_MAX_SPOTS = 100_000  # undecodable spots looked for; a whole file in another encoding has many


def _decode_message(path: Path, sep: str, codec: _Codec, layout: _Layout, header: list[str], label: str,
                    declared: str, exc: UnicodeDecodeError) -> str:
    """Where the bytes that are not ``codec`` text are: line, column, the bytes, and what they read as."""
    data = path.read_bytes()
    view = memoryview(data)[codec.bom:]
    spots, pos = [], 0
    while pos < len(view) and len(spots) < _MAX_SPOTS:
        try:
            codecs.decode(view[pos:], codec.bare)
            break
        except UnicodeDecodeError as err:
            spots.append((codec.bom + pos + err.start, codec.bom + pos + err.end))
            pos += err.end
    what = declared if not codec.bom else codec.bare
    if not spots:
        return f"`{label}` is not {what} text ({exc.reason}). " + fixes("set `encoding:` on the source")
    guess = _guess_encoding(data[codec.bom:])
    size = np.dtype(codec.unit).itemsize
    units = np.frombuffer(data[codec.bom: codec.bom + (len(data) - codec.bom) // size * size], dtype=codec.unit)
    newlines = np.flatnonzero(units == ord("\n")) * size + codec.bom
    bad_lines = np.unique(np.searchsorted(newlines, [s for s, _ in spots]) + 1)
    details = []
    for start, end in spots[:5]:
        line = int(np.searchsorted(newlines, start)) + 1
        record = int(np.searchsorted(layout.lines, line, side="right")) - 1 if len(layout.lines) else 0
        record_line = int(layout.lines[record]) if len(layout.lines) else 1
        record_start = int(newlines[record_line - 2]) + size if record_line > 1 else codec.bom
        column_index = _field_index(data[record_start:start], sep, codec)
        if record == 0:
            column = f"the header's field {column_index + 1}"
        elif column_index < len(header):
            column = f"column `{header[column_index].strip()}`"
        else:
            column = f"field {column_index + 1}"
        cell = _cell_text(data, record_start, start, sep, codec.bare)
        reads = _cell_text(data, record_start, start, sep, guess) if codec.unit == "u1" else cell
        shown = " ".join(f"0x{b:02X}" for b in data[start:end])
        details.append(f"line {line}, {column}: {shown} in `{cell}`"
                       + (f" (`{reads}` in {guess})" if reads != cell else ""))
    capped = "at least " if len(spots) >= _MAX_SPOTS else ""
    more = f" ({capped}{len(bad_lines)} lines in all)" if len(bad_lines) > 5 else ""
    steps = [f"set `encoding: {guess}` on the source: `source: {{path: {label}, encoding: {guess}}}`"]
    if guess == "cp1252":
        steps.append("or `encoding: latin-1` if the file is ISO-8859-1")
    steps.append("or export the file as UTF-8")
    return (f"`{label}` is not {what} text: bytes on {capped}{len(bad_lines)} line(s) cannot be read as "
            f"{what}: " + "; ".join(details) + f"{more}. " + fixes(*steps))


def _field_index(prefix: bytes, sep: str, codec: _Codec) -> int:
    """Which field of a record a position falls in, from the record's bytes before it."""
    text = prefix.decode(codec.bare, errors="replace")
    index, inside = 0, False
    for ch in text:
        if ch == '"':
            inside = not inside
        elif ch == sep and not inside:
            index += 1
    return index


def _cell_text(data: bytes, line_start: int, start: int, sep: str, encoding: str) -> str:
    """The cell around the byte at ``start`` read as ``encoding``, bytes it cannot read as \\x.. escapes."""
    stop = data.find(b"\n", start)
    stop = len(data) if stop < 0 else stop
    text = data[line_start:stop].decode(encoding, errors="backslashreplace").rstrip("\r")
    offset = len(data[line_start:start].decode(encoding, errors="backslashreplace"))
    left = text.rfind(sep, 0, offset) + 1
    right = text.find(sep, offset)
    cell = text[left: right if right >= 0 else len(text)].strip('"')
    return cell if len(cell) <= 60 else cell[:57] + "..."


def _guess_encoding(data: bytes) -> str:
    """cp1252 (Windows' Excel exports) if the bytes read as such, else latin-1 (which reads any byte)."""
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


# --- column names ----------------------------------------------------------------------------------

def _unique_names(frame: pd.DataFrame, letters: bool = False) -> tuple[pd.DataFrame, list[SourceIssue]]:
    """Strip the column names; a name that repeats is an error naming its positions, and the
    later copies get pandas' `name.1` so that each column can still be told apart."""
    names = [str(c).strip() for c in frame.columns]
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name != ROW:
            positions.setdefault(name, []).append(i)
    issues, taken = [], set(names)
    for name, where in positions.items():
        if len(where) < 2:
            continue
        for k, i in enumerate(where[1:], start=1):
            new = f"{name}.{k}"
            while new in taken:
                new += "_"
            names[i] = new
            taken.add(new)
        shown = " and ".join(_position(i, letters) for i in where) if len(where) == 2 else \
            ", ".join(_position(i, letters) for i in where)
        issues.append(SourceIssue(
            "error", "duplicate_header",
            f"the header `{name}` appears {len(where)} times, in columns {shown} (counting from 1), so "
            f"a mapping to `{name}` cannot say which column is meant.",
            fixes(f"rename all but one `{name}` in the export (or drop the column you do not need)",
                  "check the export's column list: a repeated name often stands where another column belongs"),
            column=name))
    frame.columns = names
    return frame, issues


def _position(index: int, letters: bool) -> str:
    if not letters:
        return str(index + 1)
    n, name = index + 1, ""
    while n:
        n, r = divmod(n - 1, 26)
        name = chr(65 + r) + name
    return f"{index + 1} ({name})"


# --- DuckDB ---------------------------------------------------------------------------------------

def quote_identifier(name: str) -> str:
    """A DuckDB (SQL) identifier in double quotes; a quote inside it is doubled."""
    return '"' + name.replace('"', '""') + '"'


def _table_reference(table: str) -> str:
    """`schema.table` (or `catalog.schema.table`) with each part quoted."""
    return ".".join(quote_identifier(part) for part in table.split("."))


def _read_only_query(query: str, label: str) -> str:
    """The query if DuckDB's own parser sees one read-only statement; else a SourceError."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"`{label}`: the `query` is not SQL DuckDB can read ({first}). "
                          + fixes("check the query in dataset.yaml")) from None
    kinds = [s.type.name for s in statements]
    if kinds != ["SELECT"]:
        found = "no statement" if not kinds else (f"{len(kinds)} statements ({', '.join(kinds)})"
                                                  if len(kinds) > 1 else f"a {kinds[0]} statement")
        raise SourceError(
            f"`{label}`: the `query` must be one read-only statement (SELECT, WITH ... SELECT, FROM, VALUES or "
            f"TABLE); it is {found}. Sources are only ever read. "
            + fixes("write the query as a single SELECT", "run anything that changes data yourself, outside "
                    "the workbench, and point the source at the result"))
    return query


def _read_duckdb(source: DuckDBSource, base_dir: Path) -> RawTable:
    import duckdb

    path = _resolve(source.duckdb, base_dir)
    if source.query is not None:
        query = _read_only_query(source.query, source.duckdb)
    else:
        query = f"SELECT * FROM {_table_reference(source.table)}"
    # Read-only protects the database file; without external access no statement can read or
    # write any other file (COPY ... TO, read_csv, ATTACH), and the lock keeps it that way.
    config = {"enable_external_access": False, "autoinstall_known_extensions": False,
              "autoload_known_extensions": False}
    try:
        with duckdb.connect(str(path), read_only=True, config=config) as con:
            con.execute("SET lock_configuration = true")
            frame = con.execute(query).df()
    except duckdb.Error as exc:
        raise SourceError(f"`{source.duckdb}`: {exc}. " + fixes("check the table name or query")) from exc
    frame, issues = _unique_names(frame)
    frame[ROW] = range(1, len(frame) + 1)
    return RawTable(frame, f"{source.duckdb}:{source.table or 'query'}", issues)


#: Drivers the project installs, used when a URL names only the database kind.
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2"}


def _parse_url(raw: str, where: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise SourceError(f"{where} is not a database URL such as postgresql://user@host:5432/db.") from None
    if url.drivername in DEFAULT_DRIVERS:
        url = url.set(drivername=DEFAULT_DRIVERS[url.drivername])
    return url


def sql_url(source: SQLSource):
    """Build the SQLAlchemy URL, taking credentials from the environment only."""
    if source.url_env:
        raw = os.environ.get(source.url_env)
        if not raw:
            raise CredentialsError(
                f"Environment variable `{source.url_env}` is not set. "
                + fixes(f"export {source.url_env}='postgresql://user:password@host/db' before running")
            )
        return _parse_url(raw, f"The value of `{source.url_env}`")
    url = _parse_url(source.url, "`url`")
    secrets = _secret_parameters(url)
    if url.password is not None or secrets:
        what = "A password is" if url.password is not None and not secrets else \
            "A credential (" + ", ".join(f"`{k}=`" for k in secrets) + ") is"
        raise CredentialsError(
            f"{what} written in the `url` of a SQL source: it would end up in reports and "
            "executed notebooks. " + fixes("remove it from the URL", "set `password_env: SOME_VARIABLE` "
                                           "and export that variable, or put the whole URL in the "
                                           "variable named by `url_env`")
        )
    if source.password_env:
        password = os.environ.get(source.password_env)
        if password is None:
            raise CredentialsError(
                f"Environment variable `{source.password_env}` (named by `password_env`) is not set. "
                + fixes(f"export {source.password_env}=... before running")
            )
        url = url.set(password=password)
    return url


#: Query parameters of a URL that hold a credential (`password`, `sslpassword`, `passfile`, `token`...).
SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|credential", re.IGNORECASE)


def _secret_parameters(url) -> list[str]:
    return [k for k in url.query if SECRET_PARAMETER.search(k)]


def safe_url(url) -> str:
    """The URL as text with the password and every query value hidden (a value may be a credential)."""
    text = url.set(query={}).render_as_string(hide_password=True)
    return text + ("?" + "&".join(f"{k}=***" for k in url.query) if url.query else "")


def _hide(text: str, url) -> str:
    """``text`` with the password and the URL's query values masked: every credential-like value, and
    any other of four characters or more (shorter ones such as `1` would mask ordinary words)."""
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        for v in (value if isinstance(value, tuple) else (value,)):
            if v and (SECRET_PARAMETER.search(key) or len(str(v)) >= 4):
                values.append(v)
    for secret in sorted({str(v) for v in values}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _read_sql(source: SQLSource) -> RawTable:
    import sqlalchemy as sa

    url = sql_url(source)
    safe = safe_url(url)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # noqa: BLE001 - unknown dialect, driver not installed
        raise SourceError(f"`{safe}`: cannot open a connection ({type(exc).__name__}: {_hide(str(exc), url)}). "
                          + fixes("use a URL such as postgresql://user@host:5432/db",
                                  "install the database driver in the environment")) from None
    try:
        with engine.connect() as con:
            if source.table:
                table = sa.Table(source.table, sa.MetaData(), schema=source.schema_, autoload_with=con)
                frame = pd.read_sql(sa.select(table), con)
            else:
                frame = pd.read_sql(sa.text(source.query), con)
    except sa.exc.SQLAlchemyError as exc:
        detail = _hide(str(getattr(exc, "orig", exc)).strip().splitlines()[0], url)
        raise SourceError(f"`{safe}` ({source.table or 'query'}): {detail}. "
                          + fixes("check the server is reachable and the table exists",
                                  "check the credentials in the environment")) from None
    finally:
        engine.dispose()
    frame, issues = _unique_names(frame)
    frame[ROW] = range(1, len(frame) + 1)
    return RawTable(frame, f"{safe}:{source.table or 'query'}", issues)
