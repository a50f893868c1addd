"""`workbench run`: per-segment reports in real kernels, isolated, atomic, and free of secrets.

The runner is tested with small notebooks of its own (`tests/data/notebooks/`), so it does
not depend on the analysis notebooks: `counts` prints its segment's deal ids, `raises`
fails, `sleeps` waits, `flaky` fails while a marker file exists, `dies` kills its own kernel,
`reads_secret` tries every way to leak a credential, `kills_factory` kills the kernel factory its kernel
was forked from.
"""
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal

from workbench import findings
from workbench.dataset import store
from workbench.cli import main
from workbench.exceptions import DataQualityWarning, SpecError, WorkbenchError
from workbench.dataset.loader import load_dataset, load_slice
from workbench.run import factory as kernel_factory
from workbench.run.factoryserver import CallFailed, FactoryServer
from workbench.run.notebooks import preload_code
from workbench.run.params import Split
from workbench.run.runner import check_kernel, run
from workbench.dataset.sample import generate
from workbench.run.segments import plan_segments

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "tests" / "data" / "notebooks"
DEAL_ID = re.compile(r"\bD\d{6}\b")
#: Persona sizes in the 600-deal sample: Technical evaluator 165, Economic buyer 148,
#: End user champion 118, Procurement 102, Executive sponsor 67 (below MIN_DEALS).
MIN_DEALS = 80


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 600-deal sample written as CSV, and the dataset loaded from it."""
    folder = tmp_path_factory.mktemp("data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = generate(n_deals=600, seed="runner-tests", truth_deals=1_000).write_csv(folder)
        return path, load_dataset(path)


def write_params(folder: Path, dataset: Path, notebooks, **keys) -> Path:
    """A parameter file in ``folder`` writing to ``folder/out``."""
    spec = {"dataset": str(dataset), "notebooks": [str(NOTEBOOKS / f"{n}.ipynb") for n in notebooks],
            "output": str(folder / "out"), "workers": 2, "title": "Runner test", "client": "Test client", **keys}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# --- without kernels ---------------------------------------------------------------------------

def test_segments_by_column_are_sorted_with_overall_first(data):
    """`by: [persona]` gives the overall segment, then one per persona in sorted order, with slugs."""
    segments, notes = plan_segments(data[1], Split(by=["persona"]), overall=True)
    assert [s.key for s in segments] == ["", "persona=Economic buyer", "persona=End user champion",
                                         "persona=Executive sponsor", "persona=Procurement",
                                         "persona=Technical evaluator"]
    assert segments[0].filter == {} and segments[0].slug == "overall"
    assert segments[1].slug == "persona-economic-buyer" and segments[1].filter == {"persona": "Economic buyer"}
    assert notes == []


def test_deals_without_a_split_value_are_counted_not_dropped_silently(data):
    """Deals with no value in a `by` column are in no split segment, and a note says how many."""
    ds = data[1]
    deals = ds.deals.copy()
    deals.loc[deals.index[:7], "persona"] = None
    segments, notes = plan_segments(replace(ds, deals=deals), Split(by=["persona", "channel"]), overall=False)
    assert "" not in [s.key for s in segments]
    assert notes == ["7 deals have no value in ['persona', 'channel']; they are in no report "
                     "(set `overall: true` to include them)."]
    assert sum(len(ds.filter(s.filter).deals) for s in segments) <= len(ds.deals)


def test_named_filters_get_unique_slugs_and_unknown_columns_fail(data):
    """Colliding slugs get a hash suffix; a misspelt value is noted; an unknown column is an error."""
    split = Split(filters={"A/B": {"channel": "Inbound"}, "A-B": {"channel": "Event"},
                           "overall": {"channel": ["Partner", "Partnr"]}})
    segments, notes = plan_segments(data[1], split, overall=True)
    slugs = [s.slug for s in segments]
    assert len(set(slugs)) == 4 and slugs[0] == "overall" and all(re.fullmatch(r"[a-z0-9-]+", s) for s in slugs)
    assert notes == ["filter 'overall': no deal has `channel` in ['Partnr']; check the spelling."]
    with pytest.raises(WorkbenchError, match=r"`split` names \['segmnt'\], which deals lack"):
        plan_segments(data[1], Split(by=["segmnt"]))


def test_slice_round_trip_is_lossless_and_carries_no_row_details(data, tmp_path):
    """save_dataset + load_slice give back the same tables; quality.json has counts, not rows or values."""
    part = data[1].filter({"persona": "Procurement"})
    spec_path = store.save_dataset(part, tmp_path / "slice")
    back = load_slice(tmp_path / "slice")
    for table in ("deals", "stage_history", "accounts", "contacts", "touchpoints"):
        assert_frame_equal(getattr(back, table), getattr(part, table))
    assert (back.as_of, back.stages, back.won_stages) == (part.as_of, part.stages, part.won_stages)
    assert store.fingerprint(back) == store.fingerprint(part)
    assert yaml.safe_load(spec_path.read_text())["as_of"] == "2025-06-30"
    quality = json.loads((tmp_path / "slice" / "quality.json").read_text())
    assert quality["excluded_rows"] == part.report.excluded_rows()
    assert all(set(p) == {"severity", "check", "table", "column", "count", "excluded", "message", "fix"}
               for p in quality["problems"])
    assert sorted(p.name for p in (tmp_path / "slice").iterdir()) == [
        "accounts.parquet", "contacts.parquet", "dataset.yaml", "deals.parquet", "quality.json",
        "stage_history.parquet", "touchpoints.parquet"]


def test_a_segments_rows_and_fingerprint_come_from_the_whole_dataset(data):
    """`segment_rows` (by id or by `links`) + `with_rows` is `filter`, and a segment's fingerprint from the whole dataset's
    row hashes at its rows (as the run takes it) is the one the segment gives alone."""
    whole = data[1]
    # Touchpoints that name no deal follow their account; one names none either.
    extra = whole.touchpoints.iloc[:4].copy()
    extra["deal_id"] = np.nan
    extra.loc[extra.index[-1], "account_id"] = np.nan
    whole = replace(whole, touchpoints=pd.concat([whole.touchpoints, extra], ignore_index=True))
    hashes, links = store.row_hashes(whole), whole.links()
    assert links is not None
    assert store.fingerprint(whole, rows=hashes) == store.fingerprint(whole)
    for segment in ({"persona": "Procurement"}, {"persona": ["Economic buyer", "Procurement"], "region": "EMEA"},
                    {"persona": "nobody"}):
        rows = whole.segment_rows(segment)
        linked = whole.segment_rows(segment, links=links)
        assert rows.keys() == linked.keys() and all(np.array_equal(rows[t], linked[t]) for t in rows)
        part = whole.with_rows(rows)
        for table in ("deals", "stage_history", "accounts", "contacts", "touchpoints"):
            assert_frame_equal(getattr(part, table), getattr(whole.filter(segment), table))
        taken = {table: hashes[table][at] for table, at in rows.items()}
        assert store.fingerprint(part, rows=taken) == store.fingerprint(part)


def test_a_slice_loads_with_the_whole_datasets_exclusions(tmp_path):
    """`load_dataset` on a slice (as a segment's kernel does) reports the original load's exclusions,
    scoped to the whole dataset, without row numbers or values."""
    source = tmp_path / "source"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = generate(n_deals=300, seed="slice-quality", truth_deals=500).write_csv(source)
    deals = (source / "deals.csv").read_text().splitlines()
    closed = [i for i, line in enumerate(deals) if i and line.split(",")[3] != "open"][:3]
    for i in closed:  # created after the close: excluded with a warning
        cells = deals[i].split(",")
        cells[1] = "2025-06-29"
        deals[i] = ",".join(cells)
    (source / "deals.csv").write_text("\n".join(deals) + "\n")
    with pytest.warns(DataQualityWarning):
        whole = load_dataset(path)
    assert whole.exclusions["rows"].sum() >= 3
    store.save_dataset(whole.filter({"persona": "Procurement"}), tmp_path / "slice")
    with pytest.warns(DataQualityWarning, match="before it was split into segments"):
        part = load_dataset(tmp_path / "slice" / "dataset.yaml")
    assert_frame_equal(part.exclusions, whole.exclusions)
    assert part.report.scope == store.WHOLE_DATASET and all(not p.rows and not p.values for p in part.report.problems)
    assert "rows were excluded while loading the whole dataset, before it was split into segments" in str(
        findings.data_findings(part))
    assert "counted over the whole dataset" in part.report._repr_html_() and "counted over" in part._repr_html_()
    assert load_slice(tmp_path / "slice").report == part.report

    # In a run, the segment's notebook says the same as the report's data-quality note.
    params = write_params(tmp_path, path, ["counts"], overall=False, min_deals_per_segment=10,
                          split={"filters": {"Procurement": {"persona": "Procurement"}}})
    assert run(params, progress=False).exit_code == 0
    segment = tmp_path / "out" / "segments" / "procurement"
    total = f"{int(whole.exclusions['rows'].sum()):,} rows were excluded while loading the whole dataset"
    assert total in (segment / "counts.ipynb").read_text()
    summary = json.loads((segment / "summary.json").read_text())  # the run's own count: no section recorded one
    assert summary["excluded_rows"]["count"] == whole.exclusions["rows"].sum()

    (tmp_path / "slice" / "quality.json").write_text("{not json")
    with pytest.raises(SpecError, match=r"`quality: quality.json`.*cannot read.*save_dataset"):
        load_dataset(tmp_path / "slice" / "dataset.yaml")


def test_missing_kernel_error_names_the_fix():
    """A kernelspec Jupyter cannot find is an error naming `make kernel` and the ipykernel command."""
    assert check_kernel()["name"] == "workbench"
    with pytest.raises(WorkbenchError, match=r"`workbench-nope` is not installed.*make kernel.*ipykernel install "
                                             r"--sys-prefix --name workbench"):
        check_kernel("workbench-nope")


def test_the_kernel_spec_is_found_as_jupyter_client_finds_it(tmp_path, monkeypatch):
    """`kernel_spec` reads a spec in Jupyter's folders itself (no jupyter_client import at a run's start) and finds
    what jupyter_client finds: the same folder, launch and name, by a name in any case; a spec that names a
    provisioner, or whose kernel.json does not read, is jupyter_client's to judge."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from workbench.run.factory import kernel_spec

    kernels = tmp_path / "jupyter" / "kernels"
    for folder, spec in {"WB-Plain": {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                      "env": {"A": "1"}, "display_name": "Plain", "language": "python"},
                         "wb-provisioned": {"argv": ["python"], "display_name": "P", "language": "python",
                                            "metadata": {"kernel_provisioner": {"provisioner_name": "nowhere"}}},
                         "wb-broken": None}.items():
        (kernels / folder).mkdir(parents=True)
        (kernels / folder / "kernel.json").write_text("{" if spec is None else json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name in ("workbench", "wb-plain", "WB-PLAIN"):
        theirs, ours = KernelSpecManager().get_kernel_spec(name), kernel_spec(name)
        assert (ours.argv, ours.env, ours.display_name, ours.resource_dir) == (
            theirs.argv, theirs.env, theirs.display_name, theirs.resource_dir), name
    with pytest.raises(NoSuchKernel):
        KernelSpecManager().get_kernel_spec("wb-provisioned")
    assert kernel_spec("wb-provisioned") is None and kernel_spec("wb-nowhere") is None
    with pytest.raises(WorkbenchError, match=r"`wb-broken` is installed, but its kernel.json does not read"):
        check_kernel("wb-broken")


def test_bad_parameters_fail_before_anything_is_written(data, tmp_path):
    """A parameter no notebook declares stops the run before any kernel starts or file is written; the kernel
    factory server, started before the parameters were checked, is gone with its private folder."""
    import psutil

    path = write_params(tmp_path, data[0], ["counts", "sleeps"], parameters={"seconds": 1, "min_deal": 5})
    before = set(psutil.Process().children(recursive=True))
    folders = set(Path(tempfile.gettempdir()).glob("workbench-kernels-*"))
    with pytest.raises(SpecError, match=r"`parameters.min_deal`: no notebook of the run declares"):
        run(path, progress=False)
    assert not (tmp_path / "out").exists()
    assert set(psutil.Process().children(recursive=True)) <= before
    assert set(Path(tempfile.gettempdir()).glob("workbench-kernels-*")) <= folders


# --- real kernels ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def by_persona(data, tmp_path_factory):
    """One run split by persona (one persona too small), with the `counts` notebook."""
    folder = tmp_path_factory.mktemp("by_persona")
    path = write_params(folder, data[0], ["counts"], split={"by": ["persona"]}, min_deals_per_segment=MIN_DEALS,
                        parameters={"label": "by persona"})
    result = run(path, progress=False)
    import psutil

    # Workers start each next kernel ahead, forked by their kernel factories; when the run returns, every
    # worker, factory and kernel is gone (the resource tracker multiprocessing keeps for this process's
    # lifetime aside).
    family = [p for p in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    return result, folder / "out", path


def test_run_writes_a_report_per_segment(by_persona):
    """Every segment gets report.html and summary.json; the too-small one no notebook; exit code 0."""
    result, out, _ = by_persona
    assert result.failures == [] and result.exit_code == 0
    status = {r["slug"]: r["status"] for r in result.segments}
    assert status == {"overall": "ok", "persona-economic-buyer": "ok", "persona-end-user-champion": "ok",
                      "persona-executive-sponsor": "too_small", "persona-procurement": "ok",
                      "persona-technical-evaluator": "ok"}
    for slug, state in status.items():
        names = sorted(p.name for p in (out / "segments" / slug).iterdir())
        assert names == (["report.html", "summary.json"] if state == "too_small"
                         else ["counts.ipynb", "report.html", "summary.json"])
    assert (out / "index.html").is_file() and (out / "run.json").is_file()
    assert not list((out / "segments").glob(".*")), "temporary folders left behind"
    small = (out / "segments" / "persona-executive-sponsor" / "report.html").read_text()
    assert f"fewer than the {MIN_DEALS} a report needs" in small


def test_local_workers_fork_their_kernels_from_their_factory(by_persona):
    """Every kernel of a local worker is forked by the worker's kernel factory where fork and pidfd exist (the
    fixture checked that no factory or kernel outlives the run)."""
    result, out, _ = by_persona
    assert {job["kernel"] for job in result.jobs} == {"forked" if kernel_factory.supported() else "started"}
    # by factories forked from the run's factory server, which started before the run read its specification
    log = (out / "logs" / "workers.log").read_text()
    assert "the kernel factory server" not in log and "no kernel factory from" not in log


@pytest.mark.skipif(not kernel_factory.supported(), reason="kernels are forked on Linux only")
def test_a_worker_whose_kernel_factory_dies_starts_its_kernels_the_usual_way(data, tmp_path):
    """A factory that dies takes its kernel with it: that notebook runs again on a kernel started the usual way,
    as do the worker's later segments; the run completes and the worker log says why."""
    path = write_params(tmp_path, data[0], ["kills_factory"], workers=1, overall=False,
                        split={"filters": {"Procurement": {"persona": "Procurement"},
                                           "Economic buyer": {"persona": "Economic buyer"}}})
    result = run(path, progress=False)
    assert result.exit_code == 0, result.failures
    assert sorted(job["attempts"] for job in result.jobs) == [1, 2]
    assert all(job["kernel"] == "started" and job["status"] == "ok" for job in result.jobs), result.jobs
    (retried,) = [job for job in result.jobs if job["attempts"] == 2]
    assert retried["retried_after"].startswith("DeadKernelError")
    assert "the kernel factory stopped serving" in (tmp_path / "out" / "logs" / "workers.log").read_text()


@pytest.mark.skipif(not kernel_factory.supported(), reason="kernels are forked on Linux only")
def test_a_run_whose_factory_server_cannot_start_says_so_in_its_log(data, tmp_path, monkeypatch):
    """The server's socket cannot be made (its folder's path is too long for a socket's address): the worker
    forks its kernels from a factory of its own, the run completes, and the server's line reaches the run's
    log."""
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = write_params(tmp_path, data[0], ["counts"], workers=1, overall=True)
    result = run(path, progress=False)
    assert result.exit_code == 0 and {job["kernel"] for job in result.jobs} == {"forked"}, result.jobs
    assert "the kernel factory server could not start" in (tmp_path / "out" / "logs" / "workers.log").read_text()


@pytest.mark.skipif(not kernel_factory.supported(), reason="kernels are forked on Linux only")
def test_a_run_kept_warm_lends_its_kernels_imports_to_the_next_run(data, tmp_path, monkeypatch, capsys):
    """`workbench run --keep-warm`: the first run's factory server outlives it, the next run's kernels are forked
    by it and its data phase runs in a process forked from it (run.json says so) to the same slices, or in the
    run itself when that process gives no answer (the log says so); a data error there is reported as usual,
    and the server is gone once idle for the last run's seconds. A number of seconds that is not one is refused
    before anything runs."""
    short = tempfile.mkdtemp(prefix="wb-", dir="/tmp")  # a socket's address is short
    monkeypatch.setattr(tempfile, "tempdir", short)
    path = write_params(tmp_path, data[0], ["counts"], workers=1, overall=True)
    try:
        assert main(["run", str(path), "--keep-warm", "60"]) == 0
        first = json.loads((tmp_path / "out" / "run.json").read_text())
        (address,) = Path(short).glob("workbench-warm-*/*.sock")
        slices = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out" / "slices").rglob("*.*")}
        assert main(["run", str(path), "--keep-warm", "60"]) == 0
        second = json.loads((tmp_path / "out" / "run.json").read_text())
        assert first["kernel"]["factory_server"] == "started, kept warm after the run"
        assert second["kernel"]["factory_server"] == "kept warm by an earlier run"
        assert {job["kernel"] for job in first["jobs"] + second["jobs"]} == {"forked"}
        assert "kept warm at" in (tmp_path / "out" / "logs" / "workers.log").read_text()
        # The second run's data phase ran in a process forked from the server, to the same slices and records.
        assert first["timing"]["data_phase"] == "in the run's own process"
        assert second["timing"]["data_phase"] == "in a process forked from the kernels' kept-warm factory server"
        assert second["inputs"] == first["inputs"] and second["notes"] == first["notes"]
        assert [s["fingerprint"] for s in second["segments"]] == [s["fingerprint"] for s in first["segments"]]
        assert {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out" / "slices").rglob("*.*")} == slices
        # A process that cannot be had, or gives no answer: the run loads its data itself, and its log says why.
        def no_answer(server, name, *args):
            raise CallFailed("ended without an answer")

        with monkeypatch.context() as patch:
            patch.setattr(FactoryServer, "call", no_answer)
            assert main(["run", str(path), "--keep-warm", "60"]) == 0
        third = json.loads((tmp_path / "out" / "run.json").read_text())
        assert third["kernel"]["factory_server"] == "kept warm by an earlier run"
        assert third["timing"]["data_phase"] == "in the run's own process" and third["inputs"] == first["inputs"]
        assert ("the run loads its data itself: a process forked from the kept-warm server ended without an answer"
                in (tmp_path / "out" / "logs" / "workers.log").read_text())
        # Its errors are the run's own: a split column the deals lack stops the run with the usual message.
        capsys.readouterr()
        bad = write_params(tmp_path / "bad", data[0], ["counts"], workers=1, split={"by": ["no_such_column"]})
        assert main(["run", str(bad), "--keep-warm", "1"]) == 2
        assert "`split` names ['no_such_column'], which deals lack" in capsys.readouterr().err
        deadline = time.monotonic() + 20
        while address.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not address.exists()
        with pytest.raises(SystemExit):
            main(["run", str(path), "--keep-warm", "soon"])
        assert "'soon' is not a number of seconds" in capsys.readouterr().err
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_summaries_name_their_segment_and_count_its_deals(by_persona, data):
    """Each summary.json names its segment and counts its deals by outcome, which the run knows even when a
    notebook of one's own shows no section (the estimates stay empty: nothing is computed twice); the overall
    one has `segment: {}`."""
    result, out, _ = by_persona
    for record in result.segments:
        summary = json.loads((out / "segments" / record["slug"] / "summary.json").read_text())
        assert summary["segment"] == record["filter"]
        expected = data[1].filter(record["filter"]).counts()
        assert summary["counts"] == {k: expected[k] for k in ("deals", "won", "lost", "open")}
        if record["status"] == "ok":
            assert summary["status"] == "ok" and summary["win_probability"] is None and summary["sections"] == []
            assert "`win_probability` is empty: the run did not include `cycle_time.ipynb`." in summary["warnings"]
    overall = json.loads((out / "segments" / "overall" / "summary.json").read_text())
    assert overall["segment"] == {} and overall["counts"]["deals"] == 600


def test_each_kernel_sees_only_its_segment(by_persona, data):
    """A segment's files hold its own deal ids (all of them, printed by its kernel) and no other segment's."""
    result, out, _ = by_persona
    for record in result.segments:
        if record["slug"] == "overall":
            continue
        own = set(data[1].filter(record["filter"]).deals["deal_id"])
        found = set()
        for path in files(out / "segments" / record["slug"]):
            found |= set(DEAL_ID.findall(path.read_text(errors="replace")))
        assert found <= own, f"{record['slug']} holds other segments' deals: {sorted(found - own)[:5]}"
        if record["status"] == "ok":
            nb = nbformat.read(out / "segments" / record["slug"] / "counts.ipynb", as_version=4)
            printed = nb.cells[-1].outputs[0]["text"].split()
            assert sorted(printed) == sorted(own)


def test_run_json_records_inputs_versions_and_timing(by_persona):
    """run.json: parameters, library versions, data fingerprints, and each job's status and phase timings."""
    result, out, _ = by_persona
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "ok" and record["inputs"]["params"]["split"] == {"by": ["persona"], "filters": None}
    assert len(record["inputs"]["data_fingerprint"]) == 64
    assert {"pandas", "papermill", "lifelines", "workbench", "python"} <= set(record["versions"])
    assert all(len(s["fingerprint"]) == 64 for s in record["segments"])
    assert len(record["jobs"]) == 5
    job = record["jobs"][0]
    assert job["status"] == "ok" and job["output"] == "segments/overall/counts.ipynb"
    assert job["parameters"] == {"label": "by persona", "dataset_path": "../../slices/overall/dataset.yaml"}
    for phase in ("kernel_start", "import", "analysis", "teardown", "duration"):
        assert job[f"{phase}_seconds"] >= 0, phase
    assert record["timing"]["per_report"]["html_seconds"] > 0
    for phase in ("load", "plan", "slices", "execute", "total"):
        assert record["timing"][f"{phase}_seconds"] > 0, phase
    overall = next(s for s in record["segments"] if s["slug"] == "overall")
    assert overall["fingerprint"] == record["inputs"]["data_fingerprint"]


def test_every_slice_is_written_and_the_data_let_go_before_the_first_kernel(data, tmp_path, monkeypatch):
    """The run holds no table of the dataset while kernels run (each holds its own slice): every slice is
    written and the loaded dataset freed before the first job is submitted."""
    import weakref

    from workbench.run import runner

    loaded, seen = [], {}
    load, execute = runner._load, runner._execute

    def load_and_watch(params):
        dataset, notes = load(params)
        loaded.extend(weakref.ref(t) for t in (dataset, dataset.deals, dataset.stage_history, dataset.touchpoints))
        return dataset, notes

    def execute_and_check(plans, pool, bar, **kw):
        seen["alive"] = [ref() is not None for ref in loaded]
        seen["slices"] = sorted(p.name for p in (tmp_path / "out" / "slices").iterdir())
        seen["data"] = [slug for slug in (p["segment"].slug for p in plans if "data" in p)]
        return execute(plans, pool, bar, **kw)

    monkeypatch.setattr(runner, "_load", load_and_watch)
    monkeypatch.setattr(runner, "_execute", execute_and_check)
    path = write_params(tmp_path, data[0], ["counts"], split={"by": ["persona"]}, min_deals_per_segment=MIN_DEALS)
    result = run(path, progress=False)
    assert result.exit_code == 0
    assert seen["alive"] == [False] * 4 and seen["data"] == []
    assert seen["slices"] == ["overall", "persona-economic-buyer", "persona-end-user-champion",
                              "persona-procurement", "persona-technical-evaluator"]


def test_executed_notebook_names_no_server_paths(by_persona):
    """Papermill's metadata holds the notebook as given and the output's file name, not absolute paths."""
    _, out, _ = by_persona
    nb = nbformat.read(out / "segments" / "persona-procurement" / "counts.ipynb", as_version=4)
    assert nb.metadata["papermill"]["output_path"] == "counts.ipynb"
    assert str(out) not in json.dumps(nb.metadata)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'dataset_path = "../../slices/persona-procurement/dataset.yaml"' in injected[0].source


@pytest.mark.slow
def test_rerun_gives_the_same_outputs(by_persona):
    """Running the same file again rewrites the same files with the same summaries."""
    result, out, path = by_persona
    before = {p.relative_to(out): p.read_bytes() for p in files(out / "segments") if p.name == "summary.json"}
    listing = [p.relative_to(out) for p in files(out) if p.suffix != ".log"]
    again = run(path, progress=False)
    assert again.exit_code == 0
    assert [p.relative_to(out) for p in files(out) if p.suffix != ".log"] == listing
    assert {p: (out / p).read_bytes() for p in before} == before


def test_a_failing_notebook_does_not_stop_the_others(data, tmp_path, capsys):
    """A raising notebook fails only its jobs, without a retry; they are written with the error marked, and
    their segments are partial (the other notebook stands): exit 3, the reasons on stderr and in run.json."""
    path = write_params(tmp_path, data[0], ["counts", "raises"], overall=False, min_deals_per_segment=10,
                        split={"filters": {"Inbound": {"channel": "Inbound"}, "Referral": {"channel": "Referral"}}})
    code = main(["run", str(path), "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 3
    assert "2 partial report(s)" in err and "failure(s)" not in err, err
    assert "segments/inbound: raises.ipynb: cell 5: ValueError: this notebook fails" in err, err
    assert "--only-failed" in err
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert {j["id"]: j["status"] for j in record["jobs"]} == {
        "inbound/counts": "ok", "inbound/raises": "failed", "referral/counts": "ok", "referral/raises": "failed"}
    assert all(j["attempts"] == 1 and "retried_after" not in j for j in record["jobs"])  # a cell's error is final
    assert [s["status"] for s in record["segments"]] == ["partial", "partial"] and record["status"] == "partial"
    assert [r.split(" on purpose")[0] for r in record["segments"][0]["reasons"]] == [
        "raises.ipynb: cell 5: ValueError: this notebook fails"]
    failed = nbformat.read(tmp_path / "out" / "segments" / "inbound" / "raises.ipynb", as_version=4)
    assert failed.metadata["papermill"]["exception"] is True
    assert any(o.output_type == "error" for c in failed.cells if c.cell_type == "code" for o in c.outputs)
    assert (tmp_path / "out" / "segments" / "inbound" / "report.html").is_file()


def test_a_pdf_that_cannot_be_printed_makes_its_segment_partial(data, tmp_path, capsys, monkeypatch):
    """`--pdf` with a browser that fails: every HTML report stands, each segment is partial with the reason
    (exit 3), and no PDF, whole or cut, is left behind."""
    monkeypatch.setenv("WORKBENCH_CHROMIUM", shutil.which("false"))
    path = write_params(tmp_path, data[0], ["counts"], overall=True, split=None)
    code = main(["run", str(path), "--pdf"])
    err = capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert code == 3 and [s["status"] for s in record["segments"]] == ["partial"], err
    assert record["segments"][0]["reasons"][0].startswith("report.pdf could not be printed: Chromium could not print")
    assert (tmp_path / "out" / "segments" / "overall" / "report.html").is_file()
    assert not [p.name for p in (tmp_path / "out").rglob("*.pdf*")]


def test_only_failed_reruns_just_the_failed_jobs(data, tmp_path):
    """`--only-failed` reruns just the failed job, keeps the others' files, and refuses once inputs changed."""
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "Procurement").touch()
    filters = {"Procurement": {"persona": "Procurement"}, "Economic buyer": {"persona": "Economic buyer"}}
    path = write_params(tmp_path, data[0], ["flaky"], overall=False, split={"filters": filters},
                        parameters={"marker_dir": str(markers)})
    first = run(path, progress=False)
    assert [j["status"] for j in first.jobs] == ["ok", "failed"] or [j["status"] for j in first.jobs] == [
        "failed", "ok"]
    kept = tmp_path / "out" / "segments" / "economic-buyer" / "flaky.ipynb"
    stamp = kept.stat().st_mtime_ns
    (markers / "Procurement").unlink()
    second = run(path, only_failed=True, progress=False)
    assert second.exit_code == 0 and [s["status"] for s in second.segments] == ["ok", "ok"]
    jobs = {j["id"]: j for j in second.jobs}
    assert jobs["economic-buyer/flaky"]["reused"] is True and not jobs["procurement/flaky"].get("reused")
    assert kept.stat().st_mtime_ns == stamp
    path.write_text(path.read_text().replace("Runner test", "Another title"))
    with pytest.raises(WorkbenchError, match=r"changed since the run.*without `--only-failed`"):
        run(path, only_failed=True, progress=False)


def test_a_failed_section_makes_its_segment_partial_and_only_failed_reruns_it(data, tmp_path):
    """A section that fails leaves the notebook running to its end: the report keeps everything else, the
    segment is partial with the section named (exit 3), and `--only-failed` reruns that job only."""
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "Procurement").touch()
    filters = {"Procurement": {"persona": "Procurement"}, "Economic buyer": {"persona": "Economic buyer"}}
    path = write_params(tmp_path, data[0], ["flaky_section"], overall=False, split={"filters": filters},
                        parameters={"marker_dir": str(markers)})
    first = run(path, progress=False)
    assert first.exit_code == 3 and not first.failures
    statuses = {s["slug"]: s for s in first.segments}
    assert statuses["economic-buyer"]["status"] == "ok"
    partial = statuses["procurement"]
    assert partial["status"] == "partial"
    assert partial["reasons"] == ["flaky_section › Flaky part: RuntimeError: marker for Procurement is present"]
    report = (tmp_path / "out" / "segments" / "procurement" / "report.html").read_text()
    assert "AFTER-THE-FLAKY-PART" in report and "could not be computed because of an unexpected error" in report
    assert "marker for Procurement" not in report and "Traceback" not in report
    index = (tmp_path / "out" / "index.html").read_text()
    assert "Partial" in index and "Flaky part" in index
    (markers / "Procurement").unlink()
    second = run(path, only_failed=True, progress=False)
    assert second.exit_code == 0 and [s["status"] for s in second.segments] == ["ok", "ok"]
    jobs = {j["id"]: j for j in second.jobs}
    assert jobs["economic-buyer/flaky_section"]["reused"] is True and not jobs["procurement/flaky_section"].get("reused")


def test_a_kernel_that_dies_is_started_once_more(data, tmp_path):
    """A kernel that dies (as when it loses a port race) gets one more start; a second death fails the job only."""
    markers = tmp_path / "markers"
    markers.mkdir()
    path = write_params(tmp_path, data[0], ["dies"], overall=False,
                        split={"filters": {"Procurement": {"persona": "Procurement"}}},
                        parameters={"marker_dir": str(markers), "deaths": 1})
    result = run(path, progress=False)
    job = result.jobs[0]
    assert result.exit_code == 0 and job["status"] == "ok" and job["attempts"] == 2
    assert job["retried_after"].startswith("DeadKernelError")
    assert sorted(p.name for p in markers.iterdir()) == ["Procurement.0"]
    assert "alive after 1 deaths" in (tmp_path / "out" / "segments" / "procurement" / "dies.ipynb").read_text()
    assert any("dies.ipynb: the kernel failed (DeadKernelError" in n and "attempt 2 succeeded" in n
               for n in result.notes), result.notes

    path.write_text(path.read_text().replace("deaths: 1", "deaths: 5"))
    again = run(path, progress=False)
    job = again.jobs[0]
    assert again.exit_code == 1 and job["status"] == "failed" and job["attempts"] == 2
    assert "the kernel failed in all 2 attempts" in job["error"]
    assert sorted(p.name for p in markers.iterdir()) == ["Procurement.0", "Procurement.1", "Procurement.2"]


def test_secrets_in_the_environment_never_reach_the_outputs(data, tmp_path, monkeypatch):
    """A password the kernel reads from the environment and leaks every way appears in no file the run writes."""
    secret = "pw-" + os.urandom(12).hex()
    monkeypatch.setenv("WORKBENCH_TEST_DB_PASSWORD", secret)
    path = write_params(tmp_path, data[0], ["reads_secret"], overall=True)
    result = run(path, progress=False)
    assert result.exit_code == 1  # the notebook raises on purpose, with the secret in the message
    written = files(tmp_path / "out")
    assert {p.suffix for p in written} >= {".ipynb", ".html", ".json", ".txt"}
    for p in written:
        assert secret not in p.read_text(errors="replace"), p
    nb = (tmp_path / "out" / "segments" / "overall" / "reads_secret.ipynb").read_text()
    assert "connecting with ***" in nb


@pytest.mark.slow
def test_an_interrupted_run_leaves_no_report_that_looks_finished(data, tmp_path):
    """Ctrl-C while a notebook runs: no segment folder, index or run.json appears; the next run completes."""
    path = write_params(tmp_path, data[0], ["sleeps"], workers=1, parameters={"seconds": 60})
    # pytest-xdist workers ignore SIGINT and children inherit that (Python then installs no
    # KeyboardInterrupt handler), so the run gets the default disposition back, as in a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(path)], start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    segments = tmp_path / "out" / "segments"
    deadline = time.monotonic() + 300  # generous: a loaded CI machine starts kernels slowly
    while not list(segments.glob(".overall.tmp-*/sleep-started")):  # the notebook writes it, then sleeps
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not (segments / "overall").exists()
    assert not (tmp_path / "out" / "index.html").exists() and not (tmp_path / "out" / "run.json").exists()
    path.write_text(path.read_text().replace("seconds: 60", "seconds: 0"))
    assert run(path, progress=False).exit_code == 0
    assert (segments / "overall" / "report.html").is_file() and not list(segments.glob(".*"))


@pytest.mark.slow
def test_dask_executor_writes_the_same_outputs(by_persona, tmp_path):
    """The same jobs on a LocalCluster of two worker processes give the same files and summaries."""
    distributed = pytest.importorskip("distributed")
    _, local_out, path = by_persona
    spec = yaml.safe_load(path.read_text())
    spec["output"] = str(tmp_path / "out")
    dask_path = tmp_path / "run.yaml"
    dask_path.write_text(yaml.safe_dump(spec))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = run(dask_path, executor="dask", scheduler=cluster.scheduler_address, progress=False)
    assert result.exit_code == 0
    workers = {j["worker"] for j in result.jobs}
    assert len(workers) >= 1 and all(str(os.getpid()) not in w for w in workers)
    names = lambda out: [p.relative_to(out) for p in files(out / "segments")]  # noqa: E731
    assert names(tmp_path / "out") == names(local_out)
    for p in names(local_out):
        if p.name == "summary.json":
            assert (tmp_path / "out" / p).read_text() == (local_out / p).read_text()


def test_dask_needs_a_scheduler_address(data, tmp_path):
    """`--executor dask` without `--scheduler` is an error before anything runs."""
    path = write_params(tmp_path, data[0], ["counts"])
    with pytest.raises(WorkbenchError, match=r"needs the scheduler's address"):
        run(path, executor="dask", progress=False)
    assert main(["run", str(path), "--executor", "dask"]) == 2


# --- nothing leaked, nothing lost ----------------------------------------------------------------

def test_variables_a_dataset_reads_credentials_from_are_secrets(tmp_path, monkeypatch):
    """`password_env` and `url_env` anywhere in a dataset.yaml name secrets, whatever the variable is called."""
    from workbench.run.secrets import SECRET_NAMES_VARIABLE, credential_variables, name_secret_variables, secret_values

    spec = tmp_path / "dataset.yaml"
    spec.write_text("deals: {source: {url: 'postgresql://a@h/db', password_env: DB_PASS, table: deals}}\n"
                    "stage_history:\n  source: {url_env: CRM_URL, query: SELECT 1}\n")
    assert credential_variables(spec) == ["CRM_URL", "DB_PASS"]
    monkeypatch.delenv(SECRET_NAMES_VARIABLE, raising=False)
    monkeypatch.setenv("DB_PASS", "hunter22")
    assert "hunter22" not in secret_values()
    name_secret_variables(["DB_PASS"])
    assert "hunter22" in secret_values()


@pytest.mark.slow
def test_a_secret_named_by_password_env_reaches_no_output_not_even_the_index(data, tmp_path, monkeypatch):
    """A password in a variable named by the dataset's `password_env` (not credential-like: `DB_PASS`), leaked
    by the kernel every way and put in the run's title, is in no file the run writes: notebooks, report,
    summary, run.json, index."""
    import workbench.run.params
    import workbench.run.secrets

    secret = "pw-" + os.urandom(12).hex()
    monkeypatch.setenv("DB_PASS", secret)
    monkeypatch.delenv(workbench.run.secrets.SECRET_NAMES_VARIABLE, raising=False)
    monkeypatch.setattr(workbench.run.params, "credential_variables", lambda path: ["DB_PASS"])
    path = write_params(tmp_path, data[0], ["reads_secret"], overall=True, title=f"Pipeline for {secret}",
                        parameters={"variable": "DB_PASS"})
    run(path, progress=False)
    written = files(tmp_path / "out")
    assert {p.name for p in written} >= {"index.html", "run.json", "report.html", "reads_secret.ipynb"}
    for p in written:
        assert secret not in p.read_text(errors="replace"), p
    assert "Pipeline for ***" in (tmp_path / "out" / "index.html").read_text()


def test_a_full_disk_never_replaces_a_good_report(data, tmp_path, monkeypatch):
    """A segment whose report cannot be written (OSError: no space left) is not published: the previous
    complete folder stays byte for byte, the temporary one is removed, and the run says so."""
    import errno

    import workbench.run.report
    from workbench.run.jobs import finish_segment

    final, tmp = tmp_path / "segments" / "overall", tmp_path / "segments" / ".overall.tmp-1"
    final.mkdir(parents=True)
    (final / "report.html").write_text("<html>the good report</html>")
    (final / "summary.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    tmp.mkdir()

    def full_disk(*args, **kwargs):
        (tmp / "report.html").write_text("<html><body>cut off")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(workbench.run.report, "render_report", full_disk)
    task = {"tmp": str(tmp), "final": str(final), "too_small": False, "notebooks": [], "filter": {},
            "counts": data[1].counts(), "excluded_rows": {"count": 0, "by_reason": []}, "title": "t", "client": "c",
            "branding": {}, "label": "All deals"}
    out = finish_segment(task)
    assert out["status"] == "failed" and "No space left on device" in out["error"]
    assert "the previous report was kept" in out["error"]
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before and not tmp.exists()


def test_a_cut_notebook_or_summary_is_not_a_complete_folder(tmp_path):
    """`check_complete` refuses a folder whose report is cut off, whose summary is not JSON or whose
    notebook does not read back."""
    from workbench.run.runfiles import check_complete

    (tmp_path / "report.html").write_text("<html><body>all</body></html>\n")
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "a.ipynb").write_text('{"cells": [')
    assert check_complete(tmp_path) is None
    assert "a.ipynb" in check_complete(tmp_path, ["a.ipynb"])
    (tmp_path / "summary.json").write_text("")
    assert "summary.json" in check_complete(tmp_path)
    (tmp_path / "report.html").write_text("<html><body>al")
    assert "report.html" in check_complete(tmp_path)


def test_a_lock_whose_process_id_now_belongs_to_another_program_is_taken_over(tmp_path):
    """A lock names its process and that process's start time: a live process that started at another time
    is not the run (ids are reused), so the lock is stale; a live run's lock names the lock file."""
    from workbench.run.runfiles import Lock, _started

    lock = tmp_path / ".run.lock"
    lock.write_text(f"{os.getpid()} {_started(os.getpid()) - 3600}")  # this process, an hour "earlier"
    with Lock(lock):
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()
    lock.write_text(f"{os.getpid()} {_started(os.getpid())}")
    with pytest.raises(WorkbenchError, match=rf"its lock file is `{re.escape(str(lock))}`.*delete"):
        Lock(lock).__enter__()


def test_output_is_a_new_empty_or_workbench_folder(data, tmp_path):
    """`output: ..` (a folder of other files) and `output: /` are refused before anything is written; an empty
    folder, or one an earlier run made, is used."""
    from workbench.run.runfiles import MARKER_FILE, claim_output

    other = tmp_path / "project"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    (other / "segments" / "overall").mkdir(parents=True)
    for folder in (other, Path("/")):
        with pytest.raises(SpecError, match="not empty and was not made by a workbench run"):
            claim_output(folder)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt", "segments"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_output(empty) == empty and (empty / MARKER_FILE).exists()
    (empty / "run.json").write_text("{}")
    assert claim_output(empty) == empty


def test_a_run_that_stops_early_keeps_the_last_log_and_never_writes_through_a_link(data, tmp_path):
    """logs/workers.log is replaced only by a run that got past loading; a symlink there is replaced, not
    followed (the file it points to is untouched)."""
    path = write_params(tmp_path, data[0], ["counts"], overall=True)
    run(path, progress=False)
    log = tmp_path / "out" / "logs" / "workers.log"
    previous = log.read_bytes()
    bad_data = tmp_path / "bad"
    bad_data.mkdir()
    (bad_data / "deals.csv").write_text("deal_id,outcome\nD1,maybe\n")
    (bad_data / "dataset.yaml").write_text("deals: {source: deals.csv}\n")
    spec = yaml.safe_load(path.read_text())
    spec["dataset"] = str(bad_data / "dataset.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(spec))
    with pytest.raises(WorkbenchError):  # the data do not load: the workers had started, the log was open
        run(broken, progress=False)
    assert log.read_bytes() == previous
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate")
    log.unlink()
    log.symlink_to(target)
    run(path, progress=False)
    assert target.read_text() == "do not truncate" and not log.is_symlink()


def test_parameters_naming_missing_columns_stop_the_run_before_any_kernel(data, tmp_path):
    """An unknown column in `speed_covariates` or `segment_by` is an error naming it (and a close match)
    before a kernel starts, instead of a KeyError inside every segment."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(data[0]), "output": str(tmp_path / "out"),
                                    "notebooks": ["cycle_time"],
                                    "parameters": {"speed_covariates": ["chanel", "amount"], "segment_by": "regoin"}}))
    with pytest.raises(SpecError) as raised:
        run(path, progress=False)
    assert "`parameters.speed_covariates` names `chanel` (did you mean `channel`?)" in str(raised.value)
    assert "`parameters.segment_by` names `regoin` (did you mean `region`?)" in str(raised.value)
    assert not (tmp_path / "out" / "segments").exists()


@pytest.mark.slow
def test_sigterm_stops_the_run_like_ctrl_c_and_leaves_nothing_running(data, tmp_path):
    """SIGTERM to the run alone (as `timeout` or a supervisor sends it): exit 143 with a message, no worker,
    kernel or resource tracker left, no lock, no temporary folder; the next run completes."""
    import psutil

    path = write_params(tmp_path, data[0], ["sleeps"], workers=1, parameters={"seconds": 120})
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(path)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    segments = tmp_path / "out" / "segments"
    deadline = time.monotonic() + 300
    while not list(segments.glob(".overall.tmp-*/sleep-started")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    family = psutil.Process(proc.pid).children(recursive=True)
    assert len(family) >= 2  # the worker and its kernel, at least
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    assert not (tmp_path / "out" / ".run.lock").exists() and not list(segments.glob(".*"))
    path.write_text(path.read_text().replace("seconds: 120", "seconds: 0"))
    assert run(path, progress=False).exit_code == 0


def test_notebooks_sharing_a_warm_kernel_start_from_a_clean_namespace(tmp_path):
    """A segment's notebooks run in one kernel, in turn: the second sees none of the first's variables or
    open figures, its cells count from 1, and both are written whole."""
    from nbformat.v4 import new_code_cell, new_notebook

    from workbench.run.jobs import execute_group

    first = new_notebook(cells=[new_code_cell('dataset_path = ""', metadata={"tags": ["parameters"]}),
                                new_code_cell("import matplotlib.pyplot as plt\nsecret_rows = [1, 2]\nplt.figure()\n"
                                              "import os\nos.getpid()")])
    second = new_notebook(cells=[new_code_cell('dataset_path = ""', metadata={"tags": ["parameters"]}),
                                 new_code_cell("import matplotlib.pyplot as plt, os\n"
                                               "assert 'secret_rows' not in globals(), 'namespace leaked'\n"
                                               "assert not plt.get_fignums(), 'figures leaked'\nos.getpid()")])
    for name, nb in (("first", first), ("second", second)):
        nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "workbench", "language": "python"}
        nbformat.write(nb, tmp_path / f"{name}.in.ipynb")
    jobs = [{"input": str(tmp_path / f"{name}.in.ipynb"), "output": str(tmp_path / f"{name}.ipynb"),
             "cwd": str(tmp_path), "parameters": {}, "timeout": 120, "notebook": name} for name in ("first", "second")]
    records = execute_group({"jobs": jobs})
    assert [r["status"] for r in records] == ["ok", "ok"], records
    outs = [nbformat.read(tmp_path / f"{name}.ipynb", as_version=4) for name in ("first", "second")]
    pids = [nb.cells[-1].outputs[0]["data"]["text/plain"] for nb in outs]
    assert pids[0] == pids[1]  # one kernel
    assert outs[1].cells[-1].execution_count <= 3


def test_a_warm_kernel_is_reset_for_the_next_notebook_before_the_last_is_written(tmp_path):
    """With another notebook to come, the kernel's reset is sent as soon as a notebook's cells are done (Papermill
    then writes it while the kernel resets); the next notebook awaits that reset and starts clean. A last notebook
    sends none."""
    from nbformat.v4 import new_code_cell, new_notebook

    from workbench.run.jobs import WarmKernel, execute_notebook

    cells = {"first": "leaked = 1\nimport os\nos.getpid()",
             "second": "import os\nassert 'leaked' not in globals(), 'namespace leaked'\nos.getpid()"}
    for name, code in cells.items():
        nb = new_notebook(cells=[new_code_cell('dataset_path = ""', metadata={"tags": ["parameters"]}),
                                 new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "workbench", "language": "python"}
        nbformat.write(nb, tmp_path / f"{name}.in.ipynb")

    def execute(name: str, kernel: WarmKernel):
        return execute_notebook(tmp_path / f"{name}.in.ipynb", tmp_path / f"{name}.ipynb", parameters={},
                                cwd=tmp_path, timeout=120, kernel=kernel)

    with WarmKernel(tmp_path) as kernel:
        kernel.more = True
        assert execute("first", kernel).status == "ok" and kernel.reset_sent is not None
        kernel.more = False
        assert execute("second", kernel).status == "ok", "the second notebook did not start clean"
        assert kernel.reset_sent is None
    pids = [nbformat.read(tmp_path / f"{name}.ipynb", as_version=4).cells[-1].outputs[0]["data"]["text/plain"]
            for name in cells]
    assert pids[0] == pids[1]  # one kernel, not a second one after a failed reset


def test_a_worker_starts_its_next_kernel_ahead_and_never_shares_it(tmp_path):
    """A kernel started ahead with the notebooks' imports serves the next segment from a clean namespace
    in that segment's folder; the segment after gets another kernel; none is left running."""
    import psutil
    from nbformat.v4 import new_code_cell, new_notebook

    from workbench.run import jobs

    nb = new_notebook(cells=[new_code_cell('dataset_path = ""', metadata={"tags": ["parameters"]}),
                             new_code_cell("assert 'json_seen' not in globals(), 'the preload leaked'"),
                             new_code_cell("import json as json_seen"),
                             new_code_cell("import os\nprint(os.getpid(), os.getcwd())")])
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "workbench", "language": "python"}
    source = tmp_path / "where.in.ipynb"
    nbformat.write(nb, source)
    assert preload_code([str(source), str(source)]) == "import json as json_seen"

    def segment(name: str, spare: dict | None) -> tuple[int, str]:
        folder = tmp_path / name
        folder.mkdir()
        job = {"input": str(source), "output": str(folder / "where.ipynb"), "cwd": str(folder), "parameters": {},
               "timeout": 120, "notebook": "where"}
        (record,) = jobs.execute_group({"jobs": [job], "spare": spare})
        assert record["status"] == "ok", record
        pid, cwd = nbformat.read(folder / "where.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()
        return int(pid), cwd

    neutral = tmp_path / "logs"
    neutral.mkdir()
    jobs.prestart_spare([str(source)], neutral)
    try:
        ahead = jobs._spare.km.provisioner.pid
        first = segment("first", spare={"notebooks": [str(source)], "cwd": str(neutral)})
        assert first == (ahead, str(tmp_path / "first"))
        assert not psutil.pid_exists(ahead) or psutil.Process(ahead).status() == psutil.STATUS_ZOMBIE
        second_ahead = jobs._spare.km.provisioner.pid
        second = segment("second", spare=None)
        assert second == (second_ahead, str(tmp_path / "second")) and second_ahead != ahead
        assert jobs._spare is None
    finally:
        jobs.close_spare()


def test_the_report_quality_box_carries_the_export_notes(tmp_path):
    """A cut extract (closes begin months after creations) is named in the data-quality box of the report."""
    from datetime import date, timedelta

    lines, start, cut = ["deal_id,created_at,closed_at,outcome,region"], date(2023, 10, 1), date(2024, 3, 1)
    for i in range(240):
        created = start + timedelta(days=i)
        closed = created + timedelta(days=150 + i % 50 if i % 4 == 0 else 5 + (i * 7) % 36)
        if closed >= cut:  # the extract holds only deals closed from March on
            lines.append(f"D{i},{created},{closed},{'won' if i % 2 else 'lost'},{('North', 'South')[i % 2]}")
    (tmp_path / "deals.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dataset.yaml").write_text('name: cut\nas_of: "2025-06-30"\ndeals:\n  source: deals.csv\n')
    params = write_params(tmp_path, tmp_path / "dataset.yaml", ["counts"], overall=True, min_deals_per_segment=10)
    assert run(params, progress=False).exit_code == 0
    (segment,) = (tmp_path / "out" / "segments").iterdir()
    page = html.unescape((segment / "report.html").read_text())
    first_close = min(line.split(",")[2] for line in lines[1:])
    assert "looks cut" in page and f"the first deal closes on {first_close}" in page


def test_a_local_worker_freezes_what_it_imported(tmp_path):
    """A local worker's imports are frozen once it has started: a collection of every generation no longer walks
    through them (0.05-0.2 s each, which fell between a segment's last cell and its report)."""
    import gc
    import operator

    from workbench.run.executors import LocalPool

    pool = LocalPool(1, tmp_path / "workers.log")
    try:
        pool.submit(operator.call, gc.get_freeze_count, "frozen")
        tag, frozen, error = pool.next_done()
    finally:
        pool.close()
    assert (tag, error) == ("frozen", None) and frozen > 50_000, frozen
