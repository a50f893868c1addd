"""The `workbench` command line: validate a dataset, write sample data, run per-segment reports."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from .exceptions import DataQualityWarning, WorkbenchError


def _validate(args) -> int:
    from .dataset.loader import validate

    report = validate(args.dataset)
    if args.format == "json":
        print(json.dumps({"exit_code": report.exit_code, "problems": report.to_records()}, indent=2))
    else:
        print(report.to_text())
    return report.exit_code


def _sample(args) -> int:
    from .dataset.sample import generate

    data = generate(n_deals=args.deals, seed=args.seed)
    path = data.write_csv(Path(args.output))
    print(f"wrote {args.deals} sample deals; dataset description: {path}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (from `timeout`, cron wrappers, supervisors), stopping the run as Ctrl-C does."""


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup that follows is not cut short
    raise Terminated


def _run(args) -> int:
    from .run.runner import run

    warnings.simplefilter("ignore", DataQualityWarning)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result = run(args.params, only_failed=args.only_failed, workers=args.workers, executor=args.executor,
                     scheduler=args.scheduler, pdf=args.pdf, keep_warm=args.keep_warm)
    except KeyboardInterrupt as stop:
        how = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
        print(f"workbench run: {how}. Finished segments are in place; unfinished ones were not written, and no "
              "worker or kernel is left running. Run the same command again to complete the run.", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    for note in result.notes:
        print(f"note: {note}")
    counts = {s: sum(r["status"] == s for r in result.segments) for s in ("ok", "partial", "too_small", "failed")}
    print(f"{len(result.segments)} segment reports ({counts['ok']} complete, {counts['partial']} partial, "
          f"{counts['too_small']} too small, {counts['failed']} failed) in {result.output}")
    print(f"index: {result.output / 'index.html'}")
    printed = [r["pdf_pages"] for r in result.segments if r.get("pdf_pages")]
    if printed:
        print(f"PDF: {len(printed)} report(s) printed, {min(printed)} to {max(printed)} pages (report.pdf beside "
              "each report.html)")
    if result.partial:
        print(f"\n{len(result.partial)} partial report(s): every other part of them stands.", file=sys.stderr)
        for partial in result.partial:
            print(f"  - {partial}", file=sys.stderr)
    if result.failures:
        print(f"\n{len(result.failures)} failure(s):", file=sys.stderr)
        for failure in result.failures:
            print(f"  - {failure}", file=sys.stderr)
    if result.failures or result.partial:
        print("Rerun only these with `--only-failed`.", file=sys.stderr)
    return result.exit_code


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a dataset.yaml and its data; exit 0 clean, 1 warnings, 2 errors")
    p.add_argument("dataset", help="path to a dataset.yaml")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_validate)

    p = sub.add_parser("sample", help="write the seeded sample CRM data and its dataset.yaml to a folder")
    p.add_argument("--output", default="output/sample", help="folder to write into (default: %(default)s)")
    p.add_argument("--deals", type=int, default=20_000, help="number of deals (default: %(default)s)")
    p.add_argument("--seed", default="workbench", help="seed text (default: %(default)s)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("run", help="one report per segment from a parameter file (params/*.yaml); "
                                   "exit 0 all complete, 1 some failed, 2 nothing ran, 3 some partial")
    p.add_argument("params", help="path to a run specification, e.g. params/demo.yaml")
    p.add_argument("--only-failed", action="store_true",
                   help="rerun only the failed and partial jobs of the previous run")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: the file's "
                                                             "`workers`, else the number of cores)")
    p.add_argument("--executor", choices=["local", "dask"], default="local", help="where jobs run (default: local)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, with `--executor dask`")
    p.add_argument("--pdf", action=argparse.BooleanOptionalAction, default=None,
                   help="print a PDF beside each report with headless Chromium (default: the file's `pdf`)")
    p.add_argument("--keep-warm", type=_seconds, default=0.0, metavar="SECONDS",
                   help="keep the kernels' imports warm for SECONDS after the run, so that the next run of the same "
                        "notebooks starts its first cell sooner (a server process that exits once idle that long; "
                        "default 0: none is kept)")
    p.set_defaults(func=_run)
    return parser


def _seconds(text: str) -> float:
    """A number of seconds from 0 to a day, for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text} is not from 0 to 86400 seconds (a day)")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (WorkbenchError, OSError) as exc:  # OSError: a folder or unreadable file where a file was expected
        if getattr(args, "format", "text") == "json":  # a script reading the JSON gets JSON on every outcome
            print(json.dumps({"exit_code": 2, "error": str(exc), "problems": []}, indent=2))
        print(f"workbench {args.command}: {exc}", file=sys.stderr)
        return 2


def console() -> None:
    """The `workbench` command: `main`, then an exit without the interpreter's teardown of every module and
    object (0.3-0.9 s after a run, which holds pandas, pyarrow, nbconvert; mypy's `hard_exit` does the
    same). The exit handlers still run and the output is flushed; a thread still working gets the usual
    exit, which waits for it."""
    code = main()
    if any(thread is not threading.main_thread() and not thread.daemon for thread in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()  # noqa: SLF001 - what the usual exit runs first (multiprocessing's, logging's)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`workbench validate ... | head`)
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
