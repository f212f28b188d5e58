"""The command line: ``vidrec ingest|simulate|split|stats|train|recommend|evaluate|report|serve|keys|demo``.

Each subcommand is a thin shell over a library function; user mistakes surface as one
readable message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vidrec import __version__
from vidrec.errors import VidrecError

CHECKPOINTS = "checkpoints"

if TYPE_CHECKING:
    from collections.abc import Callable

    from vidrec.serving.auth import KeyRing


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
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


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


def _load_training_data(data_dir: str, strict: bool):
    """Read and validate a data directory as ``ingest`` does; returns (dataset, result)."""
    from vidrec.data.validation import read_valid

    result = read_valid(data_dir, strict)
    if not result.ok:
        print(result.summary())
        print(f"training on the valid rows; {result.quarantine.height:,} rows set aside")
    return result.dataset, result


def _train(args: argparse.Namespace) -> int:
    import time

    from vidrec.config import load_config
    from vidrec.recommender import Recommender

    config = load_config(args.config)
    data, result = _load_training_data(args.data_dir, args.strict)
    start = time.perf_counter()
    checkpoints = None if args.no_checkpoints else Path(args.out) / CHECKPOINTS
    rec = Recommender.train(data, config, log=lambda msg: print(msg, flush=True), checkpoints=checkpoints)
    path = rec.save(args.out)
    if checkpoints is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the model is saved: nothing left to resume
    if not result.ok:
        result.quarantine.write_parquet(path / "quarantine.parquet")
    print(f"trained in {time.perf_counter() - start:.1f} s -> {path}")
    return 0


def _read_user_ids(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise VidrecError(f"{p}: file not found", "pass a text file with one user id per line")
    ids = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if not ids:
        raise VidrecError(f"{p}: no user ids in the file", "write one user id per line")
    return ids


def _recommend(args: argparse.Namespace) -> int:
    from vidrec.recommender import Recommender

    rec = Recommender.load(args.model_dir)
    users = _read_user_ids(args.users)
    out = rec.recommend_batch(users, k=args.k, stage=args.stage)
    out.write_parquet(args.out)
    print(f"{out.height:,} recommendations for {out['user_id'].n_unique():,} users -> {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from vidrec.evaluation.protocol import EvaluationData
    from vidrec.evaluation.report import print_report, write_json
    from vidrec.evaluation.system import evaluate_all
    from vidrec.recommender import Recommender
    from vidrec.versions import resolve_version

    rec = Recommender.load(args.model_dir)
    data = EvaluationData.from_split(args.split)
    table, per_user = evaluate_all(rec, data, baselines=not args.no_baselines)
    print_report(table, data.summary(), title=f"evaluation of {resolve_version(args.model_dir)} on {args.split}")
    print("recommendation time per user (ms): " + json.dumps({k: round(v * 1e3, 3) for k, v in per_user.items()}))
    out = Path(args.out) if args.out else resolve_version(args.model_dir) / "evaluation.json"
    write_json(table, out, meta={"split": str(args.split), **data.summary(), "seconds_per_user": per_user})
    print(f"wrote {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from vidrec.report import evaluate, load_inputs, write_report

    inputs = load_inputs(args.model, args.data, args.split)
    if args.no_baselines:
        inputs.evaluation = evaluate(inputs.rec, inputs.data, baselines=False)
    path = write_report(inputs, args.out)
    print(f"wrote {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from vidrec.serving.limits import DEFAULT_MAX_BODY
    from vidrec.serving.runtime import load_service

    _serve_logging(args.log_format, args.access_log)  # before the first line is logged
    if args.workers < 1:
        raise VidrecError(f"--workers must be at least 1, got {args.workers}", "pass --workers 1 or more")
    keys, reload_keys = _key_ring(args)
    if args.watch is not None and not args.watch > 0:
        raise VidrecError(f"--watch must be a number of seconds above 0, got {args.watch}", "pass e.g. --watch 10")
    app = load_service(args.model_dir, args.events_db, args.feature_store, args.torch_threads, args.workers,
                       keys=keys, max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY, reload_keys=reload_keys,
                       watch_s=args.watch, log_format=args.log_format)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False,  # Instrument logs them
                log_config=None if args.log_format == "json" else uvicorn.config.LOGGING_CONFIG)  # fmt: skip
    return 0


def _serve_logging(log_format: str, access_log: bool) -> None:
    """One format for every record (JSON lines for log pipelines, readable text by default), and
    the access log (``vidrec.access``, one record per request) on or off."""
    import logging

    from vidrec.serving.logs import use_format

    if log_format == "json":
        use_format("json")
    if not access_log:  # on, it follows -q / -v as every logger does
        logging.getLogger("vidrec.access").setLevel(logging.WARNING)


def _key_ring(args: argparse.Namespace) -> tuple[KeyRing | None, Callable[[], KeyRing] | None]:
    """The keys ``serve`` accepts (--api-keys, else $VIDREC_API_KEYS; none only with --no-auth),
    and how a reload reads them again."""
    import logging
    import os

    from vidrec.serving.auth import KeyRing

    path = args.api_keys or os.environ.get("VIDREC_API_KEYS")
    if args.no_auth:
        if path:
            raise VidrecError("--no-auth and a key file were both given", "pass one of them")
        logging.getLogger("vidrec.serve").warning(
            "authentication is OFF (--no-auth): anyone who reaches %s:%d can post events, add and remove videos",
            args.host, args.port)  # fmt: skip
        return None, None
    if not path:
        raise VidrecError("serve needs API keys for its write endpoints",
                          "create a key file with `vidrec keys create NAME --file keys.json` and pass "
                          "--api-keys keys.json (or set VIDREC_API_KEYS), or pass --no-auth to serve without "
                          "authentication")  # fmt: skip

    def read() -> KeyRing:
        return KeyRing.from_file(path, args.rate_limit)

    ring = read()
    logging.getLogger("vidrec.serve").info("%d API keys from %s; reads %s; rate limit %s per key", len(ring.keys),
                                           path, "need a key" if ring.protect_reads else "open", ring.rate)  # fmt: skip
    return ring, read


def _keys(args: argparse.Namespace) -> int:
    from vidrec.serving.auth import create_key, read_key_file, revoke_key

    if args.action in ("create", "revoke") and not args.name:
        raise VidrecError(f"`vidrec keys {args.action}` needs the key's name",
                          f"vidrec keys {args.action} NAME --file F")  # fmt: skip
    if args.action == "create":
        secret = create_key(args.file, args.name, args.scopes)
        print(f"created key {args.name!r} ({', '.join(args.scopes)}) in {args.file}; it is shown once, store it now:")
        print(secret)
    elif args.action == "revoke":
        revoke_key(args.file, args.name)
        print(f"revoked key {args.name!r} in {args.file}; a running service applies it at its next reload "
              "(POST /admin/reload or SIGHUP)")
    else:
        spec = read_key_file(args.file)
        for key in spec.keys:
            print(f"{key.name}\t{','.join(key.scopes)}")
    return 0


def _train_two_tower(args: argparse.Namespace) -> int:
    from vidrec.candidates.two_tower.distributed import main as train_main

    flags = ["--find-unused-parameters"] if args.find_unused_parameters else []
    return train_main(["--data", args.data_dir, "--out", args.out, "--set", *args.set, *flags])


def _demo(args: argparse.Namespace) -> int:
    from vidrec.demo import run_demo

    run_demo(Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vidrec`` command."""
    parser = argparse.ArgumentParser(prog="vidrec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vidrec {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    loud.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
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

    p = sub.add_parser("train", help="train all stages on a data directory")
    p.add_argument("data_dir")
    p.add_argument("--out", required=True, help="model directory (a new version is added)")
    p.add_argument("--config", help="TOML file overriding the default settings")
    p.add_argument("--strict", action="store_true", help="refuse data with invalid rows")
    p.add_argument("--no-checkpoints", action="store_true",
                   help=f"keep no training checkpoints (by default each epoch is saved under OUT/{CHECKPOINTS}/ "
                   "and the same command resumes an interrupted run; they are removed once the model is saved)")
    p.set_defaults(func=_train)

    p = sub.add_parser("train-two-tower", help="train the two-tower retriever alone; run under torchrun to scale out")
    p.add_argument("data_dir")
    p.add_argument("--out", required=True, help="model directory (rank 0 writes it)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="two-tower config overrides")
    p.add_argument("--find-unused-parameters", action="store_true", help="for model variants with unused weights")
    p.set_defaults(func=_train_two_tower)

    p = sub.add_parser("recommend", help="batch recommendations for a list of users")
    p.add_argument("model_dir")
    p.add_argument("--users", required=True, help="text file, one user id per line")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--stage", choices=["candidates", "scored", "final"], default="final")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.set_defaults(func=_recommend)

    p = sub.add_parser("evaluate", help="per-stage metrics beside tuned baselines on a split")
    p.add_argument("model_dir")
    p.add_argument("--split", required=True, help="split directory (from `vidrec split`)")
    p.add_argument("--out", help="JSON file for the results (default: in the model version)")
    p.add_argument("--no-baselines", action="store_true", help="skip most-popular, iALS and EASE")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("report", help="one self-contained HTML file of plots judging a model on a split",
                       description="Evaluate a trained model as `vidrec evaluate` does and write one HTML file "
                       "(no external links) with every stage beside the baselines, the funnel, calibration, "
                       "re-ranking trade-offs, coverage and popularity, and, on a simulated platform, the oracle.")
    p.add_argument("--model", required=True, help="model directory (from `vidrec train`) or one version folder")
    p.add_argument("--data", required=True, help="the split directory (from `vidrec split`), or the data directory "
                   "the split was made from; a simulated platform's ground_truth/ in it adds the oracle section")
    p.add_argument("--split", help="the split directory, when --data is the data directory (default: --data)")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    p.add_argument("--no-baselines", action="store_true", help="skip most-popular, iALS and EASE (default: "
                   "tune and include them)")
    p.set_defaults(func=_report)

    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("model_dir")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--events-db", help="SQLite file for the durable event log (default: MODEL_DIR/events.sqlite)")
    p.add_argument("--feature-store", help="redis://host:port/db shared by replicas, or a SQLite path "
                   "(default: MODEL_DIR/state/VERSION.sqlite)")
    p.add_argument("--workers", type=int, default=1, help="model processes on this machine behind one HTTP "
                   "process, each batch of requests to whichever is free (default 1: the model runs in the "
                   "HTTP process)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                   help="log every request: method, path, status, seconds, request id, client (default on)")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="text: readable lines (default); json: one JSON object per line (an access record per "
                   "request with time, method, path template, status, seconds, request_id, client)")  # fmt: skip
    p.add_argument("--api-keys", help="the key file (`vidrec keys create`) the writes need; default $VIDREC_API_KEYS")
    p.add_argument("--no-auth", action="store_true", help="serve without authentication (anyone may write)")
    p.add_argument("--rate-limit", help="per key, e.g. 100/second (default: the key file's, 100/second; '' for none)")
    p.add_argument("--max-body-bytes", type=int, help="larger request bodies get 413 (default 4 MiB)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="reload when MODEL_DIR/LATEST names a new "
                   "version, checked every SECONDS (default: reload only on POST /admin/reload or SIGHUP)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("keys", help="create, list or revoke the service's API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("name", nargs="?", help="the key's name (create, revoke)")
    p.add_argument("--file", required=True, help="the key file (JSON; keeps only the keys' SHA-256)")
    p.add_argument("--scopes", type=lambda s: [x for x in s.split(",") if x], default=["events:write"],
                   help="comma-separated: events:write, catalogue:write, recommendations:read, "
                   "service:reload (default events:write)")
    p.set_defaults(func=_keys)

    p = sub.add_parser("demo", help="run the main job on the built-in simulated platform")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=_demo)
    return parser


def _prepare_output(out: str) -> None:
    """Make the folder ``--out`` goes into, or refuse it readably, before any work starts."""
    import os
    from pathlib import Path

    parent = Path(out).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VidrecError(f"--out {out}: cannot create the folder {parent} ({exc.strerror or exc})",
                          "choose an --out under a folder you can write") from None  # fmt: skip
    if not os.access(parent, os.W_OK):
        raise VidrecError(f"--out {out}: the folder {parent} is not writable",
                          "choose an --out under a folder you can write")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand, turning user errors into a message and exit code 2."""
    import logging

    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # third-party chatter (FAISS's loader, HTTP clients) only when asked for
        for name in ("faiss", "httpx", "urllib3"):
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
    try:
        if getattr(args, "out", None):
            _prepare_output(args.out)
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
