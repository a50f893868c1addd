"""The `workbench` command line: validate a dataset, write sample data, run the demo."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .exceptions import DataQualityWarning, WorkbenchError


def _validate(args) -> int:
    from .loader import validate

    report = validate(args.dataset)
    if args.format == "json":
        print(json.dumps({"exit_code": report.exit_code, "problems": report.to_records()}, indent=2))
    else:
        print(report.to_text())
    return report.exit_code


def _sample(args) -> int:
    from .sample import generate

    data = generate(n_deals=args.deals, seed=args.seed)
    path = data.write_csv(Path(args.output))
    print(f"wrote {args.deals} sample deals; dataset description: {path}")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    warnings.simplefilter("ignore", DataQualityWarning)
    return run_demo(Path(args.output))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
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

    p = sub.add_parser("demo", help="run the main job on the bundled sample data")
    p.add_argument("--output", default="output/demo", help="folder to write into (default: %(default)s)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        print(f"workbench {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder or unreadable file where a file was expected
        print(f"workbench {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
