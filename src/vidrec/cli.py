"""The command line: ``vidrec ingest | simulate | split | stats | demo``.

Each subcommand is a thin shell over a library function; user mistakes surface as one
readable message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from vidrec.errors import VidrecError


def _ingest(args: argparse.Namespace) -> int:
    from vidrec.data.ingest import ingest_tables

    if args.source == "canonical":
        from vidrec.data.dataset import read_dataset

        ds = read_dataset(args.path)
        root = Path(args.path)
        sources = {n: str(root / f"{n}.parquet") for n in ("events", "videos", "users")}
        events, videos, users, notes = ds.events, ds.videos, ds.users, []
    else:
        from vidrec.data.adapters import load_source

        options = {"mapping_file": args.mapping} if args.mapping else {}
        raw = load_source(args.source, Path(args.path), **options)
        events, videos, users = raw.events, raw.videos, raw.users
        sources, notes = raw.sources, raw.notes
    result = ingest_tables(
        events, videos, users, args.out, sources=sources, notes=notes, strict=args.strict
    )
    print(result.summary())
    print(f"wrote {args.out} (quarantine: {Path(args.out) / 'quarantine.parquet'})")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from vidrec.data.dataset import read_dataset
    from vidrec.data.simulator import SimulatorConfig, simulate
    from vidrec.data.stats import describe, format_summary

    config = SimulatorConfig(users=args.users, videos=args.videos, days=args.days, seed=args.seed)
    simulate(config, args.out)
    print(format_summary(describe(read_dataset(args.out))))
    print(f"wrote {args.out}")
    return 0


def _parse_time(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise VidrecError(
            f"--cut {text!r} is not a date or time", "use ISO-8601, e.g. 2025-06-20T00:00:00"
        ) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _split(args: argparse.Namespace) -> int:
    from vidrec.data.dataset import read_dataset
    from vidrec.data.splits import SplitConfig, write_split
    from vidrec.data.validation import validate_dataset

    ds = read_dataset(args.dir)
    result = validate_dataset(ds)
    if not result.ok:
        print(result.summary(), file=sys.stderr)
        raise VidrecError(
            f"{args.dir} holds {result.quarantine.height:,} invalid rows",
            f"run `vidrec ingest canonical {args.dir} --out CLEAN_DIR` and split CLEAN_DIR",
        )
    cut = _parse_time(args.cut) if args.cut else None
    mode = "global" if cut is not None else args.mode
    info = write_split(ds, args.out, SplitConfig(mode=mode, fraction=args.fraction, cut=cut))
    print(
        f"{info['mode']} split: {info['train_events']:,} training events, "
        f"{info['test_events']:,} test events of {info['test_users']:,} users -> {args.out}"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    from vidrec.data.dataset import read_dataset
    from vidrec.data.stats import describe, format_summary

    print(format_summary(describe(read_dataset(args.dir))))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from vidrec.demo import run_demo

    run_demo(Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vidrec`` command."""
    parser = argparse.ArgumentParser(prog="vidrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="validate a log and write a clean data directory")
    p.add_argument("source", choices=["movielens", "kuairec", "table", "canonical"])
    p.add_argument("path", help="the source folder (or file, for `table`)")
    p.add_argument("--out", required=True, help="output data directory")
    p.add_argument("--strict", action="store_true", help="fail on the first invalid rows")
    p.add_argument("--mapping", help="TOML column mapping (source `table`)")
    p.set_defaults(func=_ingest)

    p = sub.add_parser("simulate", help="simulate a video platform with ground truth")
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--videos", type=int, default=2000)
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_simulate)

    p = sub.add_parser("split", help="split a data directory into train and test by time")
    p.add_argument("dir")
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["per-user", "global"], default="per-user")
    p.add_argument("--fraction", type=float, default=0.2, help="share of watches held out")
    p.add_argument("--cut", help="global mode: ISO time of the cut (implies --mode global)")
    p.set_defaults(func=_split)

    p = sub.add_parser("stats", help="print summary statistics of a data directory")
    p.add_argument("dir")
    p.set_defaults(func=_stats)

    p = sub.add_parser("demo", help="run the main job on the built-in simulated platform")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand, turning user errors into a message and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VidrecError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  what to do: {err.hint}", file=sys.stderr)
        return 2
    except ValueError as err:  # config validation speaks to the user too
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
