"""What importing a piece of workbench costs: a run's worker imports no analysis, and the stand-ins
that keep imports light change nothing a caller can see. Each check runs in a fresh interpreter."""
import json
import subprocess
import sys


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON value."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_workers_jobs_module_imports_no_analysis_pandas_or_grammar():
    """`workbench.run.jobs` (what a worker imports first) brings neither pandas, scipy, the analyses nor
    rfc3987_syntax's grammars (compiled at import, ~1 s) with it; Papermill after it neither."""
    loaded = _fresh("import sys, json\nimport workbench.run.jobs, papermill\n"
                    "print(json.dumps(sorted(m for m in ('pandas', 'scipy', 'lark', 'workbench.sections.base', "
                    "'workbench.findings') if m in sys.modules)))")
    assert loaded == []


def test_a_worker_writes_a_report_without_pandas_or_matplotlib():
    """What a worker imports to write a segment's report (`workbench.run.executors._import_for_reports`: nbconvert,
    the records, the report, the summary, the folder it publishes), and a report's branding, bring neither pandas
    nor matplotlib: they would cost its first segment 0.3-0.5 s of CPU beside the kernel's."""
    loaded = _fresh("import sys, json\nimport workbench.run.jobs, papermill\n"
                    "from workbench.run.executors import _import_for_reports\n_import_for_reports()\n"
                    "from workbench.run.report import _branding\n_branding({'primary_color': '#abc'})\n"
                    "print(json.dumps(sorted(m for m in ('pandas', 'matplotlib', 'scipy') "
                    "if m in sys.modules)))")
    assert loaded == []


def test_iri_checks_are_unchanged_behind_the_stand_in():
    """jsonschema's "iri" and "iri-reference" format checks give the same answers with the stand-in as
    without it, and the first one loads the real module."""
    check = ("import jsonschema, json, sys\nchecker = jsonschema.FormatChecker()\n"
             "values = ['http://example.com/a b', 'http://例え.jp/x?q=1', 'not a scheme', '//host/p', '']\n"
             "print(json.dumps([[checker.conforms(v, f) for v in values] for f in ('iri', 'iri-reference')] "
             "+ [type(sys.modules['rfc3987_syntax'].is_valid_syntax_iri).__name__]))")
    plain = _fresh(check)
    behind = _fresh("import workbench.run\n" + check)
    assert behind == plain
    assert plain[0] != [True] * 5 and plain[0] != [False] * 5  # the values tell the checks apart


def test_package_names_load_on_first_use():
    """`import workbench` and `import workbench.sections` are light; their names load when used, `dir`
    lists them and an unknown name is still an AttributeError / ImportError."""
    out = _fresh("import sys, json\nimport workbench, workbench.sections\nlight = 'pandas' not in sys.modules\n"
                 "from workbench import load_dataset, Dataset\nfrom workbench.sections import choose_settings, cycle_time\n"
                 "try:\n    workbench.nothing\n    missing = False\nexcept AttributeError:\n    missing = True\n"
                 "try:\n    from workbench.sections import nothing\n    gone = False\nexcept ImportError:\n    gone = True\n"
                 "print(json.dumps([light, callable(load_dataset), Dataset.__name__, cycle_time.__name__, missing, gone,"
                 " 'validate' in dir(workbench), 'choose_settings' in dir(workbench.sections)]))")
    assert out == [True, True, "Dataset", "workbench.sections.cycle_time", True, True, True, True]


def test_a_run_that_prepares_its_data_in_a_forked_process_imports_no_pandas():
    """A run whose data phase ran in a process forked from a kept-warm server (`workbench.run.runner.prepare_in_child`)
    reads the plans back (their `Segment`s), and writes the headlines and the index's figures, without numpy or
    pandas: importing them would cost the run 0.3-0.4 s on its way to the first cell or to its index."""
    loaded = _fresh("import sys, json\nfrom workbench.run import runner, headlines, report, segments\n"
                    "report.format_headline('win_probability', 0.42)\n"
                    "headlines.overall_headline({'win_probability': 0.4, 'horizon_days': 2,\n"
                    "                            'median_days_to_close': 1})\n"
                    "print(json.dumps(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules)))")
    assert loaded == []


def test_a_worker_imports_papermill_without_its_hdfs_handler_and_pyarrow_fs_still_imports():
    """A worker skips Papermill's optional HDFS handler (pyarrow's file systems), and pyarrow.fs imports as usual
    afterwards."""
    loaded = _fresh("import sys, json\nfrom workbench.run.executors import PAPERMILL_SKIPS, _unimportable\n"
                    "with _unimportable(PAPERMILL_SKIPS):\n    import papermill.iorw\n"
                    "skipped = ('pyarrow' not in sys.modules\n"
                    "           and papermill.iorw.HadoopFileSystem.__name__ == 'missing_dep')\n"
                    "import pyarrow.fs\nprint(json.dumps([skipped, pyarrow.fs.HadoopFileSystem.__name__]))")
    assert loaded == [True, "HadoopFileSystem"]
