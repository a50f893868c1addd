"""`workbench.dataset.store`: a dataset written as Parquet with its dataset.yaml reloads unchanged (the run gives each
segment's kernel such a slice), dated or dateless."""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal

import workbench
from workbench.dataset import store
from workbench.dataset.loader import load_slice
from workbench.exceptions import DataQualityWarning

CLEAN = Path(__file__).resolve().parent / "data" / "broken" / "clean" / "dataset.yaml"
SURVEY = ("Opportunity,Result,Deal Value,Region,Industry\n"
          "1,Won,1200,North,Retail\n2,Loss,800,South,Retail\n3,Won,300,North,Banking\n"
          "4,Pending,50,South,Banking\n5,Loss,-80,North,Retail\n6,Won,90,South,Retail\n")


def _survey(folder: Path, extra: str = "") -> workbench.Dataset:
    """A dateless win/loss export (one negative amount, excluded with a warning), loaded."""
    folder.mkdir()
    (folder / "deals.csv").write_text(SURVEY)
    (folder / "dataset.yaml").write_text(
        f"name: survey\n{extra}deals:\n  source: deals.csv\n"
        "  columns: {deal_id: Opportunity, outcome: Result, amount: Deal Value}\n"
        "  values: {outcome: {Won: won, Loss: lost, Pending: open}}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return workbench.load_dataset(folder / "dataset.yaml")


def _assert_same(back: workbench.Dataset, original: workbench.Dataset) -> None:
    for table in ("deals", "stage_history", "accounts", "contacts", "touchpoints"):
        got, want = getattr(back, table), getattr(original, table)
        assert (got is None) == (want is None), table
        if want is not None:
            assert_frame_equal(got, want)
    assert (back.stages, back.won_stages, back.lost_stages) == (original.stages, original.won_stages,
                                                                 original.lost_stages)
    assert store.fingerprint(back) == store.fingerprint(original)


def test_dated_slice_round_trips(tmp_path):
    """A dated segment's slice reloads with equal frames, the same `as_of` and the same fingerprint."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        part = workbench.load_dataset(CLEAN).filter({"region": "North"})
    store.save_dataset(part, tmp_path / "slice")
    back = load_slice(tmp_path / "slice")
    _assert_same(back, part)
    assert back.as_of == part.as_of == pd.Timestamp("2024-12-31") and back.has_dates


def test_dateless_slice_round_trips_with_equal_frames(tmp_path):
    """A dateless slice reloads dateless: equal frames (NaT dates included), NaT `as_of`, same fingerprint,
    and the whole load's report (its `no_dates` note and exclusion counts)."""
    whole = _survey(tmp_path / "source")
    part = whole.filter({"Region": "North"})
    spec_path = store.save_dataset(part, tmp_path / "slice")
    back = load_slice(tmp_path / "slice")
    _assert_same(back, part)
    assert pd.isna(back.as_of) and not back.has_dates
    assert back.deals["created_at"].dtype == back.deals["closed_at"].dtype == "datetime64[ns]"
    assert "as_of" not in yaml.safe_load(spec_path.read_text())
    assert "no_dates" in back.report.checks() and back.report.excluded_rows() == 1 == whole.report.excluded_rows()
    # The empty dates are not written: read back as columns, they would be dates every deal lacks.
    written = pd.read_parquet(tmp_path / "slice" / "deals.parquet")
    assert not {"created_at", "closed_at"} & set(written.columns)


@pytest.mark.parametrize("kind", ["dated", "dateless"])
def test_the_runs_slices_reload_as_saved_ones(tmp_path, kind):
    """`SliceWriter`, the run's way (the whole dataset made Arrow once, each slice taken at its rows and
    written on a thread), writes folders that reload equal to `save_dataset`'s of the same part, files and
    all: per segment, for the whole, and where a text column is empty in one segment only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        whole = workbench.load_dataset(CLEAN) if kind == "dated" else _survey(tmp_path / "source")
    column = "region" if kind == "dated" else "Region"
    other = "industry" if kind == "dated" else "Industry"
    deals = whole.deals.copy()
    deals.loc[deals[column] == "North", other] = np.nan  # empty in one segment, filled in the others
    whole = dataclasses.replace(whole, deals=deals)
    parts = {"all": (whole, None)}
    for value in whole.deals[column].dropna().unique():
        rows = whole.segment_rows({column: value})
        parts[value] = (whole.with_rows(rows), rows)
    writer = store.SliceWriter(whole)
    try:
        for name, (part, rows) in parts.items():
            writer.write(part, rows, tmp_path / "run" / name)
    finally:
        writer.close()
    assert len(parts) >= 3
    for name, (part, _) in parts.items():
        store.save_dataset(part, tmp_path / "saved" / name)
        back = load_slice(tmp_path / "run" / name)
        _assert_same(back, load_slice(tmp_path / "saved" / name))
        _assert_same(back, part)
        for file in ("dataset.yaml", "quality.json"):
            assert (tmp_path / "run" / name / file).read_text() == (tmp_path / "saved" / name / file).read_text()


def test_dateless_slice_keeps_a_given_as_of(tmp_path):
    """A dateless dataset with `as_of:` in its yaml keeps that cut-off through the slice."""
    whole = _survey(tmp_path / "source", 'as_of: "2024-06-30"\n')
    store.save_dataset(whole, tmp_path / "slice")
    back = load_slice(tmp_path / "slice")
    _assert_same(back, whole)
    assert back.as_of == pd.Timestamp("2024-06-30") and not back.has_dates


def test_fingerprint_tells_a_dateless_dataset_from_its_dated_cut_off(tmp_path):
    """`as_of` is part of the fingerprint: the same dateless deals with and without a cut-off differ."""
    plain = _survey(tmp_path / "plain")
    dated = _survey(tmp_path / "dated", 'as_of: "2024-06-30"\n')
    assert store.fingerprint(plain) != store.fingerprint(dated)
    assert store.fingerprint(plain) == store.fingerprint(_survey(tmp_path / "again"))


@pytest.mark.parametrize("segment", [{"Region": "South"}, {"Industry": "Banking"}])
def test_every_dateless_segment_round_trips(tmp_path, segment):
    """Each segment of a dateless dataset, as the run writes it, reloads equal."""
    part = _survey(tmp_path / "source").filter(segment)
    store.save_dataset(part, tmp_path / "slice")
    _assert_same(load_slice(tmp_path / "slice"), part)


def test_a_slice_is_read_typed_without_mapping_or_checking_again(tmp_path, monkeypatch):
    """A kernel's `load_dataset` of a slice reads its Parquet tables as written (no second parse or
    check) and gets what the mapped and checked reload gave: equal frames, fingerprint and report."""
    from workbench.dataset import loader, mapping

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        part = workbench.load_dataset(CLEAN).filter({"region": "North"})
    spec_path = store.save_dataset(part, tmp_path / "slice")
    assert store.is_typed(tmp_path / "slice" / store.QUALITY_FILE)

    def no_second_parse(*args, **kwargs):
        raise AssertionError("a slice is mapped again")

    monkeypatch.setattr(mapping, "map_columns", no_second_parse)
    back = load_slice(tmp_path / "slice")
    _assert_same(back, part)
    monkeypatch.undo()
    (tmp_path / "slice" / store.QUALITY_FILE).write_text(
        (tmp_path / "slice" / store.QUALITY_FILE).read_text().replace(f'"{store.TYPED}": true', f'"{store.TYPED}": false'))
    checked = loader._load(spec_path)[0]  # noqa: SLF001 - without the key: mapped and checked as any dataset
    _assert_same(checked, back)
    assert checked.report == back.report and back.report.scope == store.WHOLE_DATASET


def test_a_slice_loaded_with_another_cut_off_is_checked_against_it(tmp_path):
    """`load_dataset(slice, as_of=...)` with a cut-off of the caller's own maps and checks the rows against it
    (deals closed after it are excluded), as for any dataset; only the slice's own cut-off is read as is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        whole = workbench.load_dataset(CLEAN)
        spec_path = store.save_dataset(whole, tmp_path / "slice")
        earlier = whole.deals["closed_at"].dropna().sort_values().iloc[len(whole.deals) // 3]
        cut = workbench.load_dataset(spec_path, as_of=earlier)
    assert cut.as_of == earlier and len(cut.deals) < len(whole.deals)
    assert not (cut.deals["closed_at"] > earlier).any()


def test_a_currency_labels_amounts_and_travels_with_a_slice(tmp_path):
    """`currency:` in dataset.yaml reaches the Dataset, a saved slice, and the forecast's amount sentence."""
    import warnings

    import yaml

    from workbench.cycle.forecast import forecast_open
    from workbench.dataset.loader import load_dataset
    from workbench.dataset.sample import generate
    from workbench.dataset.store import save_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = generate(n_deals=400, seed="currency", truth_deals=500).write_csv(tmp_path / "data")
        spec = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**spec, "currency": "EUR"}))
        dataset = load_dataset(path)
        assert dataset.currency == "EUR"
        save_dataset(dataset, tmp_path / "slice")
        assert load_dataset(tmp_path / "slice" / "dataset.yaml").currency == "EUR"
        sentences = forecast_open(dataset, window=90).findings(currency=dataset.currency)
    assert any("expected won amount is" in s and " EUR (" in s and s.count("EUR") == 2 for s in sentences), sentences


def test_fingerprint_row_hashes_are_pandas_own():
    """The fingerprint's row hashes equal `pd.util.hash_pandas_object(frame, index=False)` for every
    kind of column, so fingerprints recorded by earlier runs (`--only-failed`) still match."""
    frame = pd.DataFrame({
        "text": ["a", "b", "a", None, np.nan, "é"],
        "mixed": ["1", 1, 2.5, None, True, "x"],
        "ints": [1, 2, 3, 4, 5, 6],
        "floats": [0.5, np.nan, 1.0, 2.0, -1.0, 0.0],
        "when": pd.to_datetime(["2024-01-01", None, "2024-02-01", "2024-03-01", None, "2024-01-01"]),
        "flag": [True, False, True, True, False, False],
        "level": pd.Categorical(["x", "y", None, "x", "y", "x"]),
        "nullable": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
        "strings": pd.array(["a", None, "c", "a", "b", "c"], dtype="string"),
    })
    frame["dup"] = frame["text"]
    # Longer columns: few distinct values (hashed once each) and mostly distinct ones (ids, each hashed
    # as it comes), both with missing values.
    rng = np.random.default_rng(7)
    long = pd.DataFrame({"few": rng.choice(np.array(["won", "lost", None, np.nan], dtype=object), 60_000),
                         "ids": [f"D{i:07d}" if i % 97 else None for i in range(60_000)]})
    long["half"] = np.where(np.arange(60_000) < 30_000, long["ids"], long["few"])
    for part in (frame, frame.iloc[:0], frame[["text"]], frame[["ints", "text", "text"]], frame.iloc[[3, 4]], long):
        expected = pd.util.hash_pandas_object(part, index=False).to_numpy()
        np.testing.assert_array_equal(store._row_hashes(part), expected)


def test_a_slices_tables_read_as_pandas_reads_them(tmp_path):
    """`store.read_table`, how a kernel reads its slice (text made Python strings a block of rows at a
    time), gives what pandas' own reading gives once a missing text is NaN and dates are in nanoseconds:
    for every kind of column, over more rows than a block, in several row groups, and with no rows."""
    n = 70_000
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "id": [f"D{i:06d}" for i in range(n)],
        "text": rng.choice(np.array(["won", "lost", "é ü", None, np.nan], dtype=object), n),
        "empty": [None] * n,
        "number": np.r_[np.nan, rng.normal(size=n - 1)],
        "count": np.arange(n),
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "missing_date": pd.NaT,
        "microseconds": pd.Series(pd.Timestamp("2024-01-01"), index=range(n)).astype("datetime64[us]"),
        "flag": rng.random(n) < 0.5,
        "level": pd.Categorical(rng.choice(["x", "y"], n)),
        "nullable": pd.array(np.where(rng.random(n) < 0.1, None, 1), dtype="Int64"),
        "strings": pd.array(rng.choice(np.array(["a", None], dtype=object), n), dtype="string"),
        "zoned": pd.Timestamp("2024-01-01", tz="Europe/Paris"),
    })
    for part in (frame, frame.iloc[:0], frame.iloc[:3]):
        path = tmp_path / "t.parquet"
        part.to_parquet(path, index=False, row_group_size=30_000)
        expected = pd.read_parquet(path)
        for name in expected.columns:
            expected[name] = store._as_loaded(expected[name])
        got = store.read_table(path)
        assert_frame_equal(got, expected, check_exact=True)
        for name in ("id", "text", "empty"):  # a missing text is NaN, never None (a load leaves NaN)
            assert all(isinstance(v, str) or (isinstance(v, float) and np.isnan(v)) for v in got[name]), name
        assert got["text"].isna().sum() == part["text"].isna().sum()
