"""Every kind of source gives the same Dataset; credentials never leak; source files are only read.

One small canonical CRM dataset (10 deals, their stage history) is written from Python
into each kind of source the readers support: CSV, Parquet, Excel, a DuckDB file and
PostgreSQL through SQLAlchemy. Loading each must give the same `Dataset`.
"""
from __future__ import annotations

import hashlib
import threading
import traceback
import uuid
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

import workbench
from workbench.exceptions import CredentialsError, DataQualityWarning, SourceError
from workbench.dataset.readers import ROW, read_source
from workbench.dataset.spec import FileSource, SQLSource

DATA = Path(__file__).resolve().parent / "data" / "readers"

STAGES = ["Lead", "Qualified", "Proposal"]
WON, LOST = ["Won"], ["Lost"]
AS_OF = "2024-12-31"
T = pd.Timestamp

# deal_id, created_at, closed_at, outcome, amount, owner, account_id, region, seats
DEALS = [
    ("D01", T("2024-01-03 09:15"), T("2024-02-20 17:00"), "won", 12000.0, "José Núñez", "A1", "Île-de-France", 10),
    ("D02", T("2024-01-10 14:00"), T("2024-03-01 10:30"), "lost", 8500.5, "Zoë Müller", "A2", "Bayern", 4),
    ("D03", T("2024-02-01 08:00"), pd.NaT, "open", 23000.0, "José Núñez", "A1", "Île-de-France", 25),
    ("D04", T("2024-02-14 11:45"), T("2024-04-02 16:20"), "won", 4999.99, "Ana Ståhl", "A3", "Skåne", 2),
    ("D05", T("2024-03-05 13:00"), T("2024-03-28 09:00"), "lost", float("nan"), None, "A4", "Bayern", 7),
    ("D06", T("2024-03-20 10:10"), pd.NaT, "open", 15000.0, "Zoë Müller", "A2", "Bayern", 12),
    ("D07", T("2024-04-01 09:00"), T("2024-06-15 12:00"), "won", 30500.0, "Ana Ståhl", "A5", "Skåne", 40),
    ("D08", T("2024-04-22 15:30"), pd.NaT, "open", 7200.0, "José Núñez", "A6", "Île-de-France", 3),
    ("D09", T("2024-05-02 09:40"), T("2024-07-01 18:00"), "lost", 11000.0, "Ana Ståhl", "A3", "Skåne", 9),
    ("D10", T("2024-06-10 08:30"), T("2024-08-30 15:15"), "won", 9800.0, "Zoë Müller", "A7", "Bayern", 8),
]
DEAL_FIELDS = ["deal_id", "created_at", "closed_at", "outcome", "amount", "owner", "account_id", "region", "seats"]

# deal_id -> [(stage, entered_at)], including a regression (D06) and a skip (D07)
HISTORY = {
    "D01": [("Lead", "2024-01-03 09:15"), ("Qualified", "2024-01-12 10:00"), ("Proposal", "2024-02-01 09:00"),
            ("Won", "2024-02-20 17:00")],
    "D02": [("Lead", "2024-01-10 14:00"), ("Qualified", "2024-02-02 11:00"), ("Lost", "2024-03-01 10:30")],
    "D03": [("Lead", "2024-02-01 08:00"), ("Qualified", "2024-02-20 08:30")],
    "D04": [("Lead", "2024-02-14 11:45"), ("Qualified", "2024-02-28 13:00"), ("Proposal", "2024-03-15 15:00"),
            ("Won", "2024-04-02 16:20")],
    "D05": [("Lead", "2024-03-05 13:00"), ("Lost", "2024-03-28 09:00")],
    "D06": [("Lead", "2024-03-20 10:10"), ("Qualified", "2024-04-05 09:00"), ("Proposal", "2024-05-01 10:00"),
            ("Qualified", "2024-05-20 14:00")],
    "D07": [("Lead", "2024-04-01 09:00"), ("Proposal", "2024-05-10 10:00"), ("Won", "2024-06-15 12:00")],
    "D08": [("Lead", "2024-04-22 15:30")],
    "D09": [("Lead", "2024-05-02 09:40"), ("Qualified", "2024-05-20 10:00"), ("Proposal", "2024-06-10 11:00"),
            ("Lost", "2024-07-01 18:00")],
    "D10": [("Lead", "2024-06-10 08:30"), ("Qualified", "2024-07-01 09:00"), ("Proposal", "2024-08-01 10:00"),
            ("Won", "2024-08-30 15:15")],
}


def canonical_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical deals and stage history as typed frames (datetimes, floats, ints, text)."""
    deals = pd.DataFrame(DEALS, columns=DEAL_FIELDS)
    deals["created_at"] = deals["created_at"].astype("datetime64[ns]")
    deals["closed_at"] = deals["closed_at"].astype("datetime64[ns]")
    history = pd.DataFrame([(d, s, T(at)) for d, entries in HISTORY.items() for s, at in entries],
                           columns=["deal_id", "stage", "entered_at"])
    history["entered_at"] = history["entered_at"].astype("datetime64[ns]")
    return deals, history


def write_spec(folder: Path, deals_source, history_source, name: str = "readers") -> Path:
    """A dataset.yaml naming the two sources; the columns already carry canonical names."""
    spec = {"name": name, "as_of": AS_OF, "dates": "iso", "stages": STAGES, "won_stages": WON,
            "lost_stages": LOST, "deals": {"source": deals_source},
            "stage_history": {"source": history_source}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows sorted by ``keys``, columns by name, and every missing text cell as None.

    CSV and Excel give NaN for an empty text cell where Parquet, DuckDB and SQL give None;
    `test_missing_text_is_the_same_in_every_source` holds that difference, so it is
    evened out here (the cells must be missing in the same places either way).
    """
    frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)[sorted(frame.columns)].copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].where(frame[column].notna(), None)
    return frame


def assert_same_dataset(got: workbench.Dataset, want: workbench.Dataset) -> None:
    """Deals and stage history equal (values and dtypes) after sorting; same stages, cut-off, findings."""
    pd.testing.assert_frame_equal(_sorted(got.deals, ["deal_id"]), _sorted(want.deals, ["deal_id"]))
    keys = ["deal_id", "entered_at", "stage"]
    pd.testing.assert_frame_equal(_sorted(got.stage_history, keys), _sorted(want.stage_history, keys))
    assert (got.stages, got.won_stages, got.lost_stages, got.as_of) == (
        want.stages, want.won_stages, want.lost_stages, want.as_of)

    def findings(ds):
        return sorted((p.severity, p.check, p.table, p.column or "", p.count) for p in ds.report.problems)

    assert findings(got) == findings(want)


# --------------------------------------------------------------------------- sources


def write_canonical(folder: Path) -> Path:
    """Write the canonical dataset into every file-based kind of source, with a spec for each."""
    deals, history = canonical_frames()
    deals.to_csv(folder / "deals.csv", index=False)
    history.to_csv(folder / "stage_history.csv", index=False)
    write_spec(folder, "deals.csv", "stage_history.csv", "csv")

    deals.to_csv(folder / "deals_semicolon.csv", index=False, sep=";")
    history.to_csv(folder / "history_semicolon.csv", index=False, sep=";")
    write_spec(folder, {"path": "deals_semicolon.csv", "delimiter": ";"},
               {"path": "history_semicolon.csv", "delimiter": ";"}, "semicolon")

    deals.to_csv(folder / "deals_latin1.csv", index=False, encoding="latin-1")
    write_spec(folder, {"path": "deals_latin1.csv", "encoding": "latin-1"}, "stage_history.csv", "latin1")

    deals.to_parquet(folder / "deals.parquet", index=False)
    history.to_parquet(folder / "stage_history.parquet", index=False)
    write_spec(folder, "deals.parquet", "stage_history.parquet", "parquet")

    with pd.ExcelWriter(folder / "crm.xlsx", engine="openpyxl") as xlsx:
        deals.to_excel(xlsx, sheet_name="Deals", index=False)
        history.to_excel(xlsx, sheet_name="History", index=False)
    write_spec(folder, {"path": "crm.xlsx", "sheet": "Deals"}, {"path": "crm.xlsx", "sheet": "History"}, "excel")

    import duckdb

    with duckdb.connect(str(folder / "crm.duckdb")) as con:
        con.register("deals_df", deals)
        con.register("history_df", history)
        con.execute("CREATE TABLE deals AS SELECT * FROM deals_df")
        con.execute("CREATE TABLE stage_changes AS SELECT deal_id AS opportunity, stage, entered_at FROM history_df")
        con.execute("CREATE TABLE stage_history AS SELECT * FROM history_df")
    write_spec(folder, {"duckdb": "crm.duckdb", "table": "deals"},
               {"duckdb": "crm.duckdb", "table": "stage_history"}, "duckdb_table")
    write_spec(folder, {"duckdb": "crm.duckdb", "query": "SELECT * FROM deals ORDER BY deal_id DESC"},
               {"duckdb": "crm.duckdb", "query": "SELECT opportunity AS deal_id, stage, entered_at "
                                                 "FROM stage_changes ORDER BY entered_at DESC"},
               "duckdb_query")
    return folder


@pytest.fixture(scope="module")
def canonical_dir(tmp_path_factory) -> Path:
    """The canonical dataset, written once for the module."""
    return write_canonical(tmp_path_factory.mktemp("canonical"))


@pytest.fixture(scope="module")
def reference(canonical_dir) -> workbench.Dataset:
    """The dataset as read from the canonical CSV files."""
    return workbench.load_dataset(canonical_dir / "csv.yaml")


def test_csv_dataset_holds_the_canonical_values(reference):
    """The CSV-loaded reference holds exactly the canonical deals and entries, with numbers and dates typed."""
    deals, history = canonical_frames()
    got = reference.deals.set_index("deal_id").loc[deals["deal_id"]]
    want = deals.set_index("deal_id")
    for column in ("created_at", "closed_at", "amount", "seats"):
        pd.testing.assert_series_equal(got[column], want[column], check_dtype=False, check_names=False)
    assert got["seats"].dtype.kind == "i" and got["amount"].dtype.kind == "f"
    assert got["outcome"].tolist() == want["outcome"].tolist()
    assert got["owner"].where(got["owner"].notna(), None).tolist() == want["owner"].tolist()
    assert got["region"].tolist() == want["region"].tolist()
    assert reference.counts() == {"deals": 10, "won": 4, "lost": 3, "open": 3}
    assert len(reference.stage_history) == len(history)
    assert reference.report.errors == [] and reference.report.excluded_rows() == 0
    assert reference.as_of == T(AS_OF)


@pytest.mark.parametrize("kind", ["parquet", "excel", "duckdb_table", "duckdb_query", "semicolon", "latin1"])
def test_every_file_source_gives_the_same_dataset(canonical_dir, reference, kind):
    """Parquet, Excel sheets, a DuckDB file (table and query), `;`-delimited and Latin-1 CSV load as the CSV does."""
    assert_same_dataset(workbench.load_dataset(canonical_dir / f"{kind}.yaml"), reference)


@pytest.mark.parametrize("kind", ["parquet", "duckdb_table", "excel", "semicolon"])
def test_missing_text_is_the_same_in_every_source(canonical_dir, reference, kind):
    """A missing owner is the very same missing value whatever the source (deal D05 has none)."""
    got = workbench.load_dataset(canonical_dir / f"{kind}.yaml").deals.set_index("deal_id").loc["D05", "owner"]
    want = reference.deals.set_index("deal_id").loc["D05", "owner"]
    assert pd.isna(got) and pd.isna(want)
    assert type(got) is type(want)


@pytest.mark.parametrize("deals_kind", ["parquet", "duckdb"])
def test_integer_ids_match_across_source_kinds(tmp_path, deals_kind):
    """Integer deal ids from a typed source (Parquet, DuckDB) match the same ids in a CSV stage history."""
    deals, history = canonical_frames()
    deals["deal_id"] = deals["deal_id"].str[1:].astype(int) + 100
    history["deal_id"] = history["deal_id"].str[1:].astype(int) + 100
    history.to_csv(tmp_path / "history.csv", index=False)
    deals.to_csv(tmp_path / "deals.csv", index=False)
    if deals_kind == "parquet":
        deals.to_parquet(tmp_path / "deals.parquet", index=False)
        source = "deals.parquet"
    else:
        import duckdb

        with duckdb.connect(str(tmp_path / "deals.duckdb")) as con:
            con.register("frame", deals)
            con.execute("CREATE TABLE deals AS SELECT * FROM frame")
        source = {"duckdb": "deals.duckdb", "table": "deals"}
    want = workbench.load_dataset(write_spec(tmp_path, "deals.csv", "history.csv", "all_csv"))
    assert len(want.stage_history) == len(history)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        got = workbench.load_dataset(write_spec(tmp_path, source, "history.csv", "mixed"))
    assert_same_dataset(got, want)


def test_excel_cells_are_real_datetimes(canonical_dir):
    """The Excel fixture really holds date cells (not text), so the Excel path parses native datetimes."""
    raw = read_source(FileSource(path="crm.xlsx", sheet="History"), canonical_dir).frame
    assert all(isinstance(v, pd.Timestamp) or hasattr(v, "year") for v in raw["entered_at"])
    assert raw[ROW].tolist() == list(range(2, 2 + len(raw)))


def test_latin1_file_is_not_utf8_and_needs_its_encoding(canonical_dir, tmp_path):
    """Without `encoding: latin-1` the Latin-1 CSV is a SourceError that names the file and suggests `encoding:`."""
    assert "Núñez".encode("latin-1") in (canonical_dir / "deals_latin1.csv").read_bytes()
    spec = write_spec(tmp_path, str(canonical_dir / "deals_latin1.csv"), str(canonical_dir / "stage_history.csv"))
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    assert "deals_latin1.csv" in str(err.value) and "encoding" in str(err.value)


@pytest.mark.parametrize("declared", ["latin-1", "cp1252"])
def test_byte_order_mark_that_contradicts_the_encoding_is_named(canonical_dir, tmp_path, declared):
    """A UTF-16 file (byte-order mark) declared as another encoding is a SourceError saying both."""
    deals, _ = canonical_frames()
    deals.to_csv(tmp_path / "deals.csv", index=False, encoding="utf-16")
    spec = write_spec(tmp_path, {"path": "deals.csv", "encoding": declared}, str(canonical_dir / "stage_history.csv"))
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    assert "UTF-16 (little-endian) byte-order mark" in str(err.value) and f"`encoding: {declared}`" in str(err.value)


def test_utf16_without_a_mark_is_named_and_reads_with_its_encoding(canonical_dir, reference, tmp_path):
    """UTF-16 text without a byte-order mark is named as such (not sent to latin-1); `encoding: utf-16-le` reads it."""
    deals, _ = canonical_frames()
    deals.to_csv(tmp_path / "deals.csv", index=False, encoding="utf-16-le")
    history = str(canonical_dir / "stage_history.csv")
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(write_spec(tmp_path, "deals.csv", history))
    assert "UTF-16-LE text without a byte-order mark" in str(err.value)
    assert "Try 1) set `encoding: utf-16-le`" in str(err.value) and "latin" not in str(err.value)
    got = workbench.load_dataset(write_spec(tmp_path, {"path": "deals.csv", "encoding": "utf-16-le"}, history))
    assert_same_dataset(got, reference)


def test_excel_duplicate_headers_name_both_columns(tmp_path):
    """Two `amount` headers in an Excel sheet are an error naming both columns, with their letters."""
    deals, _ = canonical_frames()
    frame = deals[["deal_id", "created_at", "closed_at", "outcome", "amount"]].assign(list_price=deals["amount"] * 2)
    frame = frame.rename(columns={"list_price": "amount"})
    frame.to_excel(tmp_path / "crm.xlsx", sheet_name="Deals", index=False)
    spec = _sql_spec(tmp_path, {"path": "crm.xlsx", "sheet": "Deals"})
    (error,) = workbench.validate(spec).errors
    assert (error.check, error.column) == ("duplicate_header", "amount")
    assert "in columns 5 (E) and 6 (F)" in error.message


TRICKY = {
    "quoted_line_breaks_crlf": 'id,note,n\r\n1,"a\r\nb",2\r\n\r\n2,"x,""y""",3\r\n   \r\n3,z,4,5\r\n4,w\r\n',
    "literal_quote_inside_a_cell": 'id,note,n\n1,12" screen,2\n2,"ok",3\n3,5" x,6,7\n4,a\n',
    "quoted_header_and_last_line_without_end": '"id","note","n"\n"1","a\nb\nc","2"\n"2","x"',
}


@pytest.mark.parametrize("name", TRICKY)
def test_row_numbers_and_field_counts_follow_the_csv_module(tmp_path, name):
    """`_row` is the physical line of each record and rows with another field count are exactly those
    Python's csv module sees, for quoted line breaks, CRLF, blank lines and literal quotes alike."""
    import csv
    import io

    from workbench.dataset.readers import read_csv_text

    text = TRICKY[name]
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    reader = csv.reader(io.StringIO(text, newline=""))
    width, done, kept, ragged = len(next(reader)), reader.line_num, [], []
    for row in reader:
        if row and any(v.strip() for v in row):
            (kept if len(row) == width else ragged).append(done + 1)
        done = reader.line_num
    raw = read_csv_text(path, ",")
    frame, issues = raw.frame, raw.issues
    assert frame[ROW].tolist() == kept
    assert [list(i.rows) for i in issues if i.check == "ragged_rows"] == ([ragged] if ragged else [])


#: Files of one record per line, for `_read_plain`, with the quoting and blanks pandas and pyarrow
#: must read alike; `NOT_PLAIN`: files only `_read_any` may read (None from `_read_plain`).
PLAIN = {
    "doubled_and_literal_quotes": 'id,note\n1,"x""y"\n2,ab"c\n3,"abc"def\n4, "abc"\n5,"abc" \n6,"a"b"c"\n7,""""\n',
    "blanks_and_gaps": 'id,note,n\n1,  ,\n2,"",x\n3,"  ",\t\n4,NA,None\n5,\u00a0a\u3000,#x\n',
    "crlf_bom_and_no_last_line_end": '\ufeffid,note\r\n1,a\r\n2,"b"',
    "tabs_and_blank_header_names": 'id\t\t  \tnote\n1\tx\ty\tz\n',
    "repeated_header": 'id,id,note\n1,2,x\n',
}
NOT_PLAIN = {
    "quoted_line_break": 'id,note\n1,"a\nb"\n',
    "quoted_header_line_break": '"id","no\nte"\n1,a\n2,b\n',
    "blank_line": 'id,note\n1,a\n\n2,b\n',
    "blank_last_line": 'id,note\n1,a\n\n',
    "spaces_line": 'id,note\n1,a\n   \n',
    "ragged": 'id,note\n1,a,b\n2,b\n',
    "lone_cr": 'id,note\r1,a\r',
    "nul": 'id,note\n1,a\x00b\n',
    "unclosed_last_quote": 'id,note\n1,"a""\n',
    "one_column": 'id\n1\n',
}


@pytest.mark.parametrize("blocks", ["one block", "many blocks"])
@pytest.mark.parametrize("name", [*PLAIN, *NOT_PLAIN])
def test_both_csv_readers_give_the_same_table(tmp_path, monkeypatch, name, blocks):
    """A file of one record per line is read by pyarrow (`_read_plain`), any other by pandas' C parser
    (`_read_any`); where the first reads a file, both give the same cells, names, rows and issues, and
    the columns it calls stripped are those `clean_text` would leave as they are. Read in blocks of 64
    bytes, the records (and a CRLF) fall across the blocks' ends."""
    from workbench.dataset import readers
    from workbench.dataset.mapping import clean_text

    text = {**PLAIN, **NOT_PLAIN}[name]
    if blocks == "many blocks":
        monkeypatch.setattr(readers, "_CHUNK", 64)
        monkeypatch.setattr(readers, "_ARROW_BLOCK", 64)
        head, _, body = text.partition("\n")
        text = head + "\n" + (body if body.endswith("\n") else body + "\n") * 30
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    sep = "\t" if name.startswith("tabs") else ","
    codec = readers._codec(path, "utf-8", "t.csv")
    plain = readers._read_plain(path, sep, codec, "t.csv")
    assert not [t for t in threading.enumerate() if t.name.startswith("workbench-csv")]  # the parser thread ended
    if name in NOT_PLAIN:
        assert plain is None
        return
    assert plain is not None
    pandas_read = readers._read_any(path, sep, codec, "t.csv", "utf-8")
    pd.testing.assert_frame_equal(plain.frame, pandas_read.frame, check_exact=True)
    assert plain.issues == pandas_read.issues
    data = [c for c in plain.frame.columns if c != ROW]
    cleaned = clean_text(pandas_read.frame[data].copy())
    unchanged = {c for c in data if cleaned[c].equals(pandas_read.frame[c])}
    assert plain.stripped == unchanged


def test_source_files_are_never_modified(tmp_path):
    """Loading every kind of file source leaves each file byte-identical and adds no file next to them."""
    folder = write_canonical(tmp_path)
    _competitor_spec(folder, str(DATA / "competitor_none.csv"))

    def snapshot(where):
        return {p.name: sha256(p) for p in where.iterdir() if p.suffix != ".yaml"}

    hostile = [write_spec(folder, source, "stage_history.csv", f"hostile_{i}")
               for i, source in enumerate(hostile_duckdb_sources(folder))]
    before, static_before = snapshot(folder), snapshot(DATA)
    for spec in sorted(folder.glob("*.yaml")):
        if spec in hostile:
            with pytest.raises(SourceError):
                workbench.load_dataset(spec)
        else:
            workbench.load_dataset(spec)
    assert snapshot(folder) == before
    assert snapshot(DATA) == static_before


def hostile_duckdb_sources(folder: Path) -> list[dict]:
    """DuckDB sources that would write the folder's own `deals.csv` if their SQL ran as written."""
    target = str(folder / "deals.csv").replace("'", "''")
    return [
        {"duckdb": "crm.duckdb", "query": f"COPY deals TO '{target}'"},
        {"duckdb": "crm.duckdb", "query": f"SELECT * FROM deals; COPY deals TO '{target}'"},
        {"duckdb": "crm.duckdb", "table": f'deals"; COPY deals TO \'{target}\'; --'},
        {"duckdb": "crm.duckdb", "table": f'deals" TO \'{target}\' (FORMAT csv); --'},
        {"duckdb": "crm.duckdb", "query": f"SELECT * FROM read_csv('{target}')"},
    ]


@pytest.mark.parametrize("index, shown", [(0, "a COPY statement"), (1, "2 statements (SELECT, COPY)"),
                                          (2, "does not exist"), (3, "does not exist"),
                                          (4, "file system operations are disabled")])
def test_duckdb_sql_can_only_read(tmp_path, index, shown):
    """A COPY query, several statements, a crafted `table:` or a query reading another file is a clear
    SourceError, and every file stays byte for byte as it was."""
    folder = write_canonical(tmp_path)
    hashes = {p.name: sha256(p) for p in folder.iterdir()}
    spec = write_spec(folder, hostile_duckdb_sources(folder)[index], "stage_history.csv", "hostile")
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    assert shown in str(err.value) and "crm.duckdb" in str(err.value)
    assert {p.name: sha256(p) for p in folder.iterdir() if p.name != "hostile.yaml"} == hashes


def test_duckdb_table_names_are_quoted_per_part(tmp_path, reference):
    """`table:` may name `schema.table`, and a quote inside a table name is read as part of the name."""
    import duckdb

    deals, _ = canonical_frames()
    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.register("frame", deals)
        con.execute("CREATE SCHEMA sales")
        con.execute('CREATE TABLE sales."deals ""2024""" AS SELECT * FROM frame')
    reference.stage_history.to_csv(tmp_path / "stage_history.csv", index=False)
    spec = write_spec(tmp_path, {"duckdb": "crm.duckdb", "table": 'sales.deals "2024"'}, "stage_history.csv")
    assert_same_dataset(workbench.load_dataset(spec), reference)


# --------------------------------------------------------------------------- what is not a file


@pytest.mark.parametrize("kind, shown", [("fifo", "named pipe"), ("folder", "a folder"), ("device", "a device")])
def test_source_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind, shown):
    """A FIFO, a folder or a device named `deals.csv` is a SourceError at once; nothing waits on it."""
    import os
    import threading

    target = tmp_path / "deals.csv"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/null")
    deals, history = canonical_frames()
    history.to_csv(tmp_path / "stage_history.csv", index=False)
    spec = write_spec(tmp_path, "deals.csv", "stage_history.csv")
    outcome = {}

    def run():
        try:
            workbench.validate(spec)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive() and kind == "fifo":  # let the blocked reader go before failing
        os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))
    assert not thread.is_alive(), "validate blocked on the source"
    assert isinstance(outcome.get("error"), SourceError), outcome
    assert shown in str(outcome["error"]) and "`deals.csv`" in str(outcome["error"])


# --------------------------------------------------------------------------- literal "None" / "NA"


def _competitor_spec(folder: Path, source) -> Path:
    spec = {"name": "win-loss", "as_of": AS_OF, "dates": "iso", "deals": {"source": source}}
    path = folder / "competitor.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


COMPETITOR_VALUES = ["None", "NA", "N/A", "null", "Known Competitor", None]


def test_literal_none_and_na_in_csv_stay_values(tmp_path):
    """A literal "None", "NA", "N/A" or "null" in a CSV is a value (IBM's Competitor Type "None"); "" is missing."""
    spec = _competitor_spec(tmp_path, str(DATA / "competitor_none.csv"))
    deals = workbench.load_dataset(spec).deals.sort_values("deal_id")
    got = deals["competitor_type"].tolist()
    assert got[:5] == COMPETITOR_VALUES[:5]
    assert pd.isna(got[5])


def _competitor_frame() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "competitor_none.csv", dtype=str, keep_default_na=False, na_values=[""])
    for column in ("created_at", "closed_at"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _competitor_excel(folder: Path) -> dict:
    _competitor_frame().to_excel(folder / "winloss.xlsx", sheet_name="Deals", index=False)
    return {"path": "winloss.xlsx", "sheet": "Deals"}


def _competitor_parquet(folder: Path) -> dict:
    _competitor_frame().to_parquet(folder / "winloss.parquet", index=False)
    return {"path": "winloss.parquet"}


def _competitor_duckdb(folder: Path) -> dict:
    import duckdb

    frame = _competitor_frame()
    with duckdb.connect(str(folder / "winloss.duckdb")) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE deals AS SELECT * FROM frame")
    return {"duckdb": "winloss.duckdb", "table": "deals"}


@pytest.mark.parametrize("writer", [
    pytest.param(_competitor_excel, id="excel"),
    pytest.param(_competitor_parquet, id="parquet"),
    pytest.param(_competitor_duckdb, id="duckdb"),
])
def test_literal_none_and_na_stay_values_in_other_sources(tmp_path, writer):
    """Text cells "None", "NA", "N/A", "null" stay values when read from Excel, Parquet and DuckDB too."""
    deals = workbench.load_dataset(_competitor_spec(tmp_path, writer(tmp_path))).deals.sort_values("deal_id")
    got = deals["competitor_type"].tolist()
    assert got[:5] == COMPETITOR_VALUES[:5]
    assert pd.isna(got[5])


# --------------------------------------------------------------------------- unreadable sources


@pytest.mark.parametrize("source, shown", [
    ("missing/deals.csv", "missing/deals.csv"),
    ({"path": "missing/crm.xlsx", "sheet": "Deals"}, "missing/crm.xlsx"),
    ({"duckdb": "missing/crm.duckdb", "table": "deals"}, "missing/crm.duckdb"),
])
def test_missing_file_is_a_source_error_naming_the_path(tmp_path, source, shown):
    """A source file that does not exist is a SourceError naming the path as written in the spec."""
    spec = write_spec(tmp_path, source, "missing/stage_history.csv")
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    assert shown in str(err.value)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", ["deals.xls", "deals.json"])
def test_unsupported_file_type_is_a_clear_source_error(tmp_path, name):
    """An `.xls` or `.json` file is refused with a SourceError that names it, its suffix and the formats to use."""
    if name == "deals.json":
        source = str(DATA / name)
    else:
        (tmp_path / name).write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # an OLE2 (.xls) header
        source = name
    spec = write_spec(tmp_path, source, "stage_history.csv")
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    message = str(err.value)
    suffix = Path(name).suffix
    assert name in message and f"`{suffix}`" in message
    assert "CSV" in message and ".xlsx" in message


@pytest.mark.parametrize("kind", ["duckdb", "excel"])
def test_wrong_table_or_sheet_is_a_source_error_naming_it(canonical_dir, tmp_path, kind):
    """A table not in the DuckDB file, or a sheet not in the workbook, is a SourceError naming it and the file."""
    if kind == "duckdb":
        source, file = {"duckdb": str(canonical_dir / "crm.duckdb"), "table": "opportunities_typo"}, "crm.duckdb"
    else:
        source, file = {"path": str(canonical_dir / "crm.xlsx"), "sheet": "opportunities_typo"}, "crm.xlsx"
    spec = write_spec(tmp_path, source, str(canonical_dir / "stage_history.csv"))
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    assert "opportunities_typo" in str(err.value) and file in str(err.value)


# --------------------------------------------------------------------------- credentials (no server needed)


SECRET = "s3cr3t-Pa55word"


def _sql_spec(folder: Path, source: dict) -> Path:
    spec = {"name": "sql", "as_of": AS_OF, "deals": {"source": source}}
    path = folder / "sql.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _shown(exc: BaseException) -> str:
    """Everything a user would see of an exception: its message and the printed traceback."""
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


def test_password_inside_url_is_refused_without_echoing_it(tmp_path):
    """A password written in `url` is a CredentialsError whose message and traceback never contain it."""
    spec = _sql_spec(tmp_path, {"url": f"postgresql://analyst:{SECRET}@127.0.0.1:1/crm", "table": "deals"})
    with pytest.raises(CredentialsError) as err:
        workbench.load_dataset(spec)
    assert SECRET not in _shown(err.value)
    assert "password_env" in str(err.value)


def test_unset_password_env_is_a_credentials_error_naming_the_variable(tmp_path, monkeypatch):
    """`password_env` naming an unset variable is a CredentialsError that names the variable."""
    monkeypatch.delenv("WB_TEST_UNSET_PASSWORD", raising=False)
    spec = _sql_spec(tmp_path, {"url": "postgresql://analyst@127.0.0.1:1/crm",
                                "password_env": "WB_TEST_UNSET_PASSWORD", "table": "deals"})
    with pytest.raises(CredentialsError, match="WB_TEST_UNSET_PASSWORD"):
        workbench.load_dataset(spec)


def test_unset_url_env_is_a_credentials_error_naming_the_variable(tmp_path, monkeypatch):
    """`url_env` naming an unset variable is a CredentialsError that names the variable."""
    monkeypatch.delenv("WB_TEST_UNSET_URL", raising=False)
    spec = _sql_spec(tmp_path, {"url_env": "WB_TEST_UNSET_URL", "query": "SELECT 1"})
    with pytest.raises(CredentialsError, match="WB_TEST_UNSET_URL"):
        workbench.load_dataset(spec)


@pytest.mark.parametrize("form", ["url", "url_env"])
def test_password_as_url_parameter_is_never_shown(tmp_path, monkeypatch, form):
    """A password given as `?password=` is refused in `url` and hidden in messages when it comes from `url_env`."""
    url = f"postgresql+psycopg2://analyst@127.0.0.1:1/crm?password={SECRET}"
    if form == "url":
        source, expected = {"url": url, "table": "deals"}, CredentialsError
    else:
        monkeypatch.setenv("WB_TEST_PARAM_URL", url)
        source, expected = {"url_env": "WB_TEST_PARAM_URL", "table": "deals"}, SourceError
    with pytest.raises(SourceError) as err:  # port 1: nothing listens, so the read fails either way
        workbench.load_dataset(_sql_spec(tmp_path, source))
    assert isinstance(err.value, expected)
    assert SECRET not in _shown(err.value)


@pytest.mark.parametrize("parameter", ["sslpassword", "passfile", "password", "token", "client_secret"])
def test_credential_url_parameters_are_refused_without_echoing_them(tmp_path, parameter):
    """A query parameter named like a credential (`sslpassword`, `token`...) in `url` is refused, never shown."""
    url = f"postgresql+psycopg2://analyst@127.0.0.1:1/crm?sslmode=prefer&{parameter}={SECRET}"
    with pytest.raises(CredentialsError) as err:
        workbench.load_dataset(_sql_spec(tmp_path, {"url": url, "table": "deals"}))
    assert SECRET not in _shown(err.value)
    assert f"`{parameter}=`" in str(err.value) and "url_env" in str(err.value)


def test_url_query_values_are_never_shown(tmp_path, monkeypatch):
    """From `url_env` such parameters are allowed, but no query value appears in the error (masked `***`)."""
    monkeypatch.setenv("WB_TEST_QUERY_URL", f"postgresql+psycopg2://analyst@127.0.0.1:1/crm?sslpassword={SECRET}"
                                            "&application_name=acme-crm-prod")
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(_sql_spec(tmp_path, {"url_env": "WB_TEST_QUERY_URL", "table": "deals"}))
    assert not isinstance(err.value, CredentialsError)
    shown = _shown(err.value)
    assert SECRET not in shown and "acme-crm-prod" not in shown
    assert "sslpassword=***" in str(err.value)


@pytest.mark.parametrize("url", ["postgresql+pg8000://analyst@127.0.0.1:1/crm",
                                 "postgresqlx://analyst@127.0.0.1:1/crm",
                                 "not a url"], ids=["driver_not_installed", "unknown_dialect", "malformed"])
def test_unusable_sql_url_is_a_source_error(tmp_path, monkeypatch, url):
    """A URL whose driver is not installed, whose dialect is unknown or that is not a URL is a SourceError."""
    monkeypatch.setenv("WB_TEST_BAD_URL", url)
    spec = _sql_spec(tmp_path, {"url_env": "WB_TEST_BAD_URL", "table": "deals"})
    with pytest.raises(SourceError):
        workbench.load_dataset(spec)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_tables(postgres_server):
    """The canonical dataset in a schema of its own on the server (dropped afterwards); yields the schema."""
    import sqlalchemy as sa

    schema = f"wb_readers_{uuid.uuid4().hex[:12]}"
    deals, history = canonical_frames()
    engine = postgres_server.engine
    with engine.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        with engine.begin() as con:
            deals.to_sql("deals", con, schema=schema, index=False)
            history.to_sql("stage_history", con, schema=schema, index=False)
        yield schema
    finally:
        with engine.begin() as con:
            con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        with engine.connect() as con:
            left = con.execute(sa.text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"),
                               {"s": schema}).scalar()
        assert left == 0


#: SQLAlchemy 2.1 maps a bare `postgresql://` URL (the README's form, and CI's WORKBENCH_PG_URL) to
#: psycopg 3, which the project does not install; the readers pick psycopg2 for it. Both forms are tested.
DRIVERS = [
    pytest.param("as_given", id="as_given"),
    pytest.param("psycopg2", id="psycopg2"),
]


def pg_url(server, driver: str, with_password: bool = False) -> str:
    """The server's URL as CI gives it (`as_given`) or naming the psycopg2 driver; a password only if asked."""
    from sqlalchemy.engine import make_url

    url = make_url(server.url)
    if driver == "psycopg2" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    if with_password:
        url = url.set(password=server.password)
    return url.render_as_string(hide_password=False)


@pytest.mark.postgres
@pytest.mark.parametrize("driver", DRIVERS)
def test_postgres_password_env_gives_the_same_dataset(postgres_server, pg_tables, reference, tmp_path, driver):
    """Tables read through `url` + `password_env` (schema given) load as the CSV does."""
    source = {"url": pg_url(postgres_server, driver), "password_env": postgres_server.password_env,
              "schema": pg_tables}
    spec = write_spec(tmp_path, {**source, "table": "deals"}, {**source, "table": "stage_history"}, "pg")
    assert postgres_server.password not in spec.read_text()
    assert_same_dataset(workbench.load_dataset(spec), reference)


@pytest.mark.postgres
@pytest.mark.parametrize("driver", DRIVERS)
def test_postgres_url_env_gives_the_same_dataset(postgres_server, pg_tables, reference, tmp_path, monkeypatch,
                                                 driver):
    """Queries read through `url_env` (the whole URL, password included, in the environment) load as the CSV does."""
    monkeypatch.setenv("WB_TEST_PG_FULL_URL", pg_url(postgres_server, driver, with_password=True))
    spec = write_spec(
        tmp_path,
        {"url_env": "WB_TEST_PG_FULL_URL", "query": f'SELECT * FROM "{pg_tables}".deals ORDER BY deal_id DESC'},
        {"url_env": "WB_TEST_PG_FULL_URL", "query": f'SELECT * FROM "{pg_tables}".stage_history'},
        "pg_url_env")
    assert postgres_server.password not in spec.read_text()
    assert_same_dataset(workbench.load_dataset(spec), reference)


@pytest.mark.postgres
def test_postgres_labels_never_show_the_password(postgres_server, pg_tables, monkeypatch):
    """The label naming a SQL source in reports hides the password, for both credential forms; rows count from 1."""
    monkeypatch.setenv("WB_TEST_PG_FULL_URL", pg_url(postgres_server, "psycopg2", with_password=True))
    for source in (SQLSource(url=pg_url(postgres_server, "psycopg2"), password_env=postgres_server.password_env,
                             schema=pg_tables, table="deals"),
                   SQLSource(url_env="WB_TEST_PG_FULL_URL", query=f'SELECT * FROM "{pg_tables}".deals')):
        raw = read_source(source, Path("."))
        assert postgres_server.password not in raw.label
        assert raw.frame[ROW].tolist() == list(range(1, 11))


@pytest.mark.postgres
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("form", ["password_env", "url_env"])
def test_postgres_wrong_table_names_it_without_the_password(postgres_server, pg_tables, tmp_path, monkeypatch,
                                                            form, driver):
    """A table the server lacks is a SourceError naming the table, never the password."""
    monkeypatch.setenv("WB_TEST_PG_FULL_URL", pg_url(postgres_server, driver, with_password=True))
    if form == "password_env":
        source = {"url": pg_url(postgres_server, driver), "password_env": postgres_server.password_env}
    else:
        source = {"url_env": "WB_TEST_PG_FULL_URL"}
    spec = _sql_spec(tmp_path, {**source, "schema": pg_tables, "table": "opportunities_typo"})
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    assert not isinstance(err.value, CredentialsError)
    assert "opportunities_typo" in str(err.value)
    assert postgres_server.password not in _shown(err.value)


@pytest.mark.postgres
def test_postgres_wrong_password_is_a_source_error_without_it(postgres_server, tmp_path, monkeypatch):
    """A wrong password in the environment is a SourceError that shows neither it nor the right one."""
    wrong = "wrong-" + SECRET
    monkeypatch.setenv("WB_TEST_WRONG_PASSWORD", wrong)
    spec = _sql_spec(tmp_path, {"url": pg_url(postgres_server, "psycopg2"),
                                "password_env": "WB_TEST_WRONG_PASSWORD", "table": "deals"})
    with pytest.raises(SourceError) as err:
        workbench.load_dataset(spec)
    shown = _shown(err.value)
    assert wrong not in shown and postgres_server.password not in shown
    assert "password authentication failed" in str(err.value)


# --------------------------------------------------------------------------- the postgres guard itself


@pytest.mark.parametrize("ci, url, outcome", [
    ("", None, "skipped"),
    ("true", None, "failed"),
    ("true", "postgresql+psycopg2://nobody@127.0.0.1:1/none", "failed"),
    ("", "postgresql+psycopg2://nobody@127.0.0.1:1/none", "failed"),
])
def test_postgres_guard_skips_locally_and_fails_under_ci(pytester, monkeypatch, ci, url, outcome):
    """The guard skips a postgres test when no server is configured locally; under CI, or unreachable, it fails."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    postgres: needs PostgreSQL\n")
    pytester.makepyfile(test_guarded="""
        import pytest

        @pytest.mark.postgres
        def test_needs_server():
            pass
    """)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("WORKBENCH_PG_PASSWORD", "unused")
    if url is None:
        monkeypatch.delenv("WORKBENCH_PG_URL", raising=False)
    else:
        monkeypatch.setenv("WORKBENCH_PG_URL", url)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    counts = result.parseoutcomes()
    if outcome == "skipped":
        assert counts == {"skipped": 1}
    else:
        assert counts.get("errors") == 1 and "skipped" not in counts
        result.stdout.fnmatch_lines(["*WORKBENCH_PG_URL*"])


def test_a_column_is_called_stripped_exactly_when_no_cell_has_blanks_to_strip():
    """`_is_stripped` (first and last bytes from the Arrow buffers, then a trim where they leave a doubt)
    agrees with Python's `str.strip` on columns with missing cells first, last and between, every blank
    `str.strip` removes at either end, text beyond ASCII, and slices of a column."""
    import random

    import pyarrow as pa

    from workbench.dataset.readers import BLANKS, _is_stripped

    rng = random.Random(7)
    words = ["a", "Email", "ünïcode", "x y", "日本", "D0001", "12.5", None]
    for trial in range(400):
        cells = [rng.choice(words) for _ in range(rng.randint(0, 6))]
        if cells and rng.random() < 0.5:
            at, blank = rng.randrange(len(cells)), rng.choice(BLANKS)
            if cells[at] is not None:
                cells[at] = blank + cells[at] if rng.random() < 0.5 else cells[at] + blank
        column = pa.array(cells, type=pa.string())
        start = rng.randint(0, len(cells))
        for part, values in ((column, cells), (column.slice(start), cells[start:])):
            expected = all(v is None or v == v.strip() for v in values)
            assert _is_stripped(part) == expected, (trial, values)
