"""The command line: ``vidrec ingest|simulate|split|stats|train|train-two-tower|recommend|evaluate|report|serve|keys``
and ``vidrec demo``.

Each subcommand is a thin shell over a library function; user mistakes surface as one
readable message and a non-zero exit, never a traceback. Each ends with one summary line
(what it wrote where, the counts, the seconds), printed here, never by the library.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vidrec import __version__
from vidrec.cli_help import Help, command, wrapped
from vidrec.errors import VidrecError

CHECKPOINTS = "checkpoints"

if TYPE_CHECKING:
    from collections.abc import Callable

    from vidrec.serving.auth import KeyRing


def _done(args: argparse.Namespace, text: str) -> None:
    """The closing line of a command: ``COMMAND: what it did (N s)``, seconds since it started (a
    record of the log when the log is JSON, so that stream stays one object per line)."""
    line = f"{args.command}: {text} ({time.perf_counter() - args.started:.1f} s)"
    if getattr(args, "log_format", "text") == "json":
        import logging

        logging.getLogger("vidrec.cli").info(line)
    else:
        print(line, flush=True)


def _counts(ds) -> str:  # a Dataset
    return f"{ds.events.height:,} events, {ds.videos.height:,} videos, {ds.users.height:,} users"


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
    _done(args, f"wrote {_counts(result.validation.dataset)} to {args.out}; "
          f"{result.validation.quarantine.height:,} rows quarantined in {Path(args.out) / 'quarantine.parquet'}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from vidrec.data.dataset import read_dataset
    from vidrec.data.simulator import SimulatorConfig, simulate
    from vidrec.data.stats import describe, format_summary

    config = SimulatorConfig(users=args.users, videos=args.videos, days=args.days, seed=args.seed)
    simulate(config, args.out)
    ds = read_dataset(args.out)
    print(format_summary(describe(ds)))
    _done(args, f"wrote {_counts(ds)} over {args.days} days to {args.out} (ground truth in "
          f"{Path(args.out) / 'ground_truth'})")
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
    _done(args, f"{info['mode']} split: wrote {info['train_events']:,} training events to "
          f"{Path(args.out) / 'train'} and {info['test_events']:,} test events of {info['test_users']:,} users "
          f"to {Path(args.out) / 'test'}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from vidrec.data.dataset import read_dataset
    from vidrec.data.stats import describe, format_summary

    ds = read_dataset(args.dir)
    print(format_summary(describe(ds)))
    _done(args, f"described {_counts(ds)} in {args.dir}")
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
    from vidrec.config import load_config
    from vidrec.recommender import Recommender

    config = load_config(args.config)
    data, result = _load_training_data(args.data_dir, args.strict)
    checkpoints = None if args.no_checkpoints else Path(args.out) / CHECKPOINTS
    if args.two_tower and not (Path(args.two_tower) / "config.json").exists():
        raise VidrecError(f"{args.two_tower}: not a two-tower model folder (no config.json)",
                          "pass the --out folder of `vidrec train-two-tower`")  # fmt: skip
    rec = Recommender.train(data, config, log=lambda msg: print(msg, flush=True), checkpoints=checkpoints,
                            two_tower=args.two_tower, serve=False)  # fmt: skip
    path = rec.save(args.out)
    if checkpoints is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the model is saved: nothing left to resume
    set_aside = ""
    if not result.ok:
        result.quarantine.write_parquet(path / "quarantine.parquet")
        set_aside = f"; {result.quarantine.height:,} invalid rows in {path / 'quarantine.parquet'}"
    _done(args, f"trained on {_counts(data)}, wrote {path} (LATEST names it){set_aside}")
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
    _done(args, f"wrote {out.height:,} recommendations ({args.stage} stage) for {out['user_id'].n_unique():,} "
          f"users to {args.out}")
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
    _done(args, f"judged {table.height} models on {len(data.judged_users()):,} users of {args.split}, wrote {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from vidrec.report import evaluate, load_inputs, write_report

    inputs = load_inputs(args.model, args.data, args.split)
    if args.no_baselines:
        inputs.evaluation = evaluate(inputs.rec, inputs.data, baselines=False)
    path = write_report(inputs, args.out)
    _done(args, f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, judged on {args.split or args.data})")
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
    code = 0
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False,  # Instrument logs them
                    log_config=None if args.log_format == "json" else uvicorn.config.LOGGING_CONFIG)  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down and raises it again
        code = 130
    _done(args, f"served {app.state.batcher.requests:,} slate requests of {args.model_dir} on {args.host}:{args.port}")
    return code


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
        _done(args, f"revoked key {args.name!r} in {args.file}; a running service applies it at its next reload "
              "(POST /admin/reload or SIGHUP)")
    else:
        spec = read_key_file(args.file)
        for key in spec.keys:
            print(f"{key.name}\t{','.join(key.scopes)}")
        _done(args, f"{len(spec.keys)} keys in {args.file}")
    return 0


def _train_two_tower(args: argparse.Namespace) -> int:
    from vidrec.candidates.two_tower.distributed import main as train_main

    flags = ["--find-unused-parameters"] if args.find_unused_parameters else []
    flags += ["--checkpoints", args.checkpoints] if args.checkpoints else []
    if args.config:  # the [two_tower] section of a vidrec config file
        from vidrec.config import load_config

        two_tower = Path(args.out) / "requested_config.json"
        Path(args.out).mkdir(parents=True, exist_ok=True)
        load_config(args.config).two_tower.save(two_tower)
        flags += ["--config", str(two_tower)]
    code = train_main(["--data", args.data_dir, "--out", args.out, "--set", *args.set, *flags])
    if code == 0 and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 wrote the model
        _done(args, f"wrote the two-tower model and train_report.json to {args.out}")
    return code


def _demo(args: argparse.Namespace) -> int:
    from vidrec.demo import run_demo

    figures = run_demo(Path(args.out))
    print()
    _done(args, f"wrote the platform, data, split and model to {args.out}, the report to {figures['report']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vidrec`` command."""
    about = ("A three-stage video recommender (candidates -> scoring -> re-ranking): ingest or simulate a log, "
             "split it, train, evaluate, report, recommend and serve. `vidrec COMMAND --help` has each command's "
             "options and examples.")  # fmt: skip
    examples = "examples:\n  vidrec demo\n  vidrec -q train splits/ml100k/train --out models/ml100k\n  vidrec serve -h"
    parser = argparse.ArgumentParser(prog="vidrec", description=wrapped(about), formatter_class=Help, epilog=examples)
    parser.add_argument("--version", action="version", version=f"vidrec {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only, no progress bars")
    loud.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    _data_commands(sub)
    _model_commands(sub)
    _service_commands(sub)
    return parser


def _data_commands(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "ingest", "validate a log and write a clean data directory",
                 "Read a log (MovieLens, KuaiRec, any CSV/Parquet table, or a vidrec data directory), check "
                 "every row and write the valid ones as a data directory; invalid rows go to "
                 "OUT/quarantine.parquet with their reason, and OUT/ingest.json counts them.")  # fmt: skip
    p.add_argument("source", choices=["movielens", "kuairec", "table", "canonical"],
                   help="the adapter: movielens (ML-100K, 1M, latest, 20M, 25M), kuairec (KuaiRec 2.0), table "
                   "(a TOML mapping of any log), canonical (a vidrec data directory, re-validated)")  # fmt: skip
    p.add_argument("path", help="the source folder (for `table`: the TOML mapping file, unless --mapping)")
    p.add_argument("--out", required=True, help="the data directory to write (required)")
    p.add_argument("--strict", action="store_true", help="write nothing and fail (exit 2) if any row is invalid")
    p.add_argument("--mapping", help="the TOML column mapping of source `table` (default: PATH itself)")
    p.set_defaults(func=_ingest)

    p = command(sub, "simulate", "simulate a video platform with ground truth",
                 "Simulate users, videos and a logging policy day by day and write the data directory, with "
                 "ground_truth/ (every user's true completion probabilities) and simulation.json. The same seed "
                 "gives the same bytes.")  # fmt: skip
    p.add_argument("--users", type=int, default=3000, help="users on the platform")
    p.add_argument("--videos", type=int, default=2000, help="videos at the start (uploads come daily)")
    p.add_argument("--days", type=int, default=28, help="days of activity")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", required=True, help="the data directory to write (required)")
    p.set_defaults(func=_simulate)

    p = command(sub, "split", "split a data directory into train and test by time",
                 "Write OUT/train/ (a data directory), OUT/test/events.parquet and OUT/split.json. No training "
                 "event is later than the test events it is compared with.")  # fmt: skip
    p.add_argument("dir", help="a valid data directory (from `vidrec ingest` or `vidrec simulate`)")
    p.add_argument("--out", required=True, help="the split directory to write (required)")
    p.add_argument("--mode", choices=["per-user", "global"], default="per-user",
                   help="per-user: each user's last FRACTION of watches; global: one cut for everyone")
    p.add_argument("--fraction", type=float, default=0.2, help="share of watches held out")
    p.add_argument("--cut", help="an ISO time to cut at, e.g. 2025-06-22T00:00:00 (implies --mode global; "
                   "default: the time that holds out FRACTION)")  # fmt: skip
    p.set_defaults(func=_split)

    p = command(sub, "stats", "print summary statistics of a data directory",
                 "Counts by event kind, completion quantiles, popularity concentration and activity per user.")
    p.add_argument("dir", help="a data directory")
    p.set_defaults(func=_stats)


def _model_commands(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "train", "train all stages on a data directory",
                 "Validate the data as `ingest` does, train candidates -> scoring -> re-ranking and write a new "
                 "version folder OUT/v<UTC time>/ with the resolved config, a manifest of checksums and the "
                 "stages; OUT/LATEST names it.")  # fmt: skip
    p.add_argument("data_dir", help="a data directory (the `train/` of a split, to evaluate on its test)")
    p.add_argument("--out", required=True, help="the model directory; a new version is added (required)")
    p.add_argument("--config", help="a TOML (or JSON) file overriding the default settings, checked key by key "
                   "before any work (default: the defaults of src/vidrec/config.py)")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="refuse data with invalid rows (by default they are set "
                   "aside in the version's quarantine.parquet)")  # fmt: skip
    p.add_argument("--no-checkpoints", action="store_true",
                   help=f"keep no training checkpoints (default: each epoch is saved under OUT/{CHECKPOINTS}/ "
                   "and the same command resumes an interrupted run; they are removed once the model is saved)")
    p.add_argument("--two-tower", metavar="DIR", default=None,
                   help="use the retrieval two-tower trained by `vidrec train-two-tower --out DIR` (for example under "
                   "torchrun on several machines or a GPU) instead of training one (default: train it here)")

    p.set_defaults(func=_train)

    p = command(sub, "train-two-tower", "train the two-tower retriever alone; run under torchrun to scale out",
                 "Train the candidate stage's two-tower model on its own; under torchrun each process trains on "
                 "its share of every epoch (DistributedDataParallel: gloo on CPUs, NCCL on GPUs).")  # fmt: skip
    p.add_argument("data_dir", help="a data directory")
    p.add_argument("--out", required=True, help="where rank 0 writes the model and train_report.json (required)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="TwoTowerConfig fields to override, e.g. embedding_dim=32 epochs=10 (default: none)")
    p.add_argument("--find-unused-parameters", action="store_true",
                   help="for model variants with weights a step may not use (DDP's find_unused_parameters)")
    p.add_argument("--config", help="a vidrec TOML config: its [two_tower] section (default: the defaults)")
    p.add_argument("--checkpoints", metavar="DIR",
                   help="keep per-round checkpoints here; the same command resumes an interrupted run (default: none)")
    p.set_defaults(func=_train_two_tower)

    p = command(sub, "recommend", "batch recommendations for a list of users",
                 "Write each user's top K with provenance (user_id, rank, video_id, score, source and the "
                 "per-stage columns). Users the model does not know get cold-start picks (known_user false).")
    p.add_argument("model_dir", help="a model directory (LATEST is served) or one version folder")
    p.add_argument("--users", required=True, help="a text file with one user id per line (required)")
    p.add_argument("--k", type=int, default=10, help="videos per user")
    p.add_argument("--stage", choices=["candidates", "scored", "final"], default="final",
                   help="stop after this stage, to judge each alone")
    p.add_argument("--out", required=True, help="the Parquet file to write (required)")
    p.set_defaults(func=_recommend)

    p = command(sub, "evaluate", "per-stage metrics beside tuned baselines on a split",
                 "Judge the candidates, the scored list and the final slate beside most-popular, iALS and EASE "
                 "(tuned on a carve of the training period, never on the test): candidate recall@10..200, "
                 "NDCG, recall and precision@10 of completed videos, full ranking.")  # fmt: skip
    p.add_argument("model_dir", help="a model directory (LATEST is judged) or one version folder")
    p.add_argument("--split", required=True, help="the split directory the model was trained on (required)")
    p.add_argument("--out", help="the JSON file of the results (default: evaluation.json in the model version)")
    p.add_argument("--no-baselines", action="store_true", help="skip most-popular, iALS and EASE")
    p.set_defaults(func=_evaluate)

    p = command(sub, "report", "one self-contained HTML file of plots judging a model on a split",
                 "Evaluate a trained model as `vidrec evaluate` does and write one HTML file (no external links) "
                 "with every stage beside the baselines, the funnel, calibration, re-ranking trade-offs, "
                 "coverage and popularity, and, on a simulated platform, the oracle.")  # fmt: skip
    p.add_argument("--model", required=True, help="model directory (from `vidrec train`) or one version folder "
                   "(required)")  # fmt: skip
    p.add_argument("--data", required=True, help="the split directory (from `vidrec split`), or the data directory "
                   "the split was made from; a simulated platform's ground_truth/ in it adds the oracle section "
                   "(required)")  # fmt: skip
    p.add_argument("--split", help="the split directory, when --data is the data directory (default: --data)")
    p.add_argument("--out", default="report.html", help="the HTML file to write")
    p.add_argument("--no-baselines", action="store_true", help="skip most-popular, iALS and EASE (default: "
                   "tune and include them)")  # fmt: skip
    p.set_defaults(func=_report)


def _service_commands(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "serve", "run the HTTP service",
                 "Serve slates, take events, uploads and removals over HTTP (OpenAPI at /docs, Prometheus at "
                 "/metrics, the browser UI at /). Writes need an API key (`vidrec keys`).")  # fmt: skip
    p.add_argument("model_dir", help="a model directory (LATEST is served)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    p.add_argument("--port", type=int, default=8000, help="the port to listen on")
    p.add_argument("--events-db", help="SQLite file for the durable event log (default: MODEL_DIR/events.sqlite)")
    p.add_argument("--feature-store", help="redis://host:port/db shared by replicas, or a SQLite path "
                   "(default: MODEL_DIR/state/VERSION.sqlite)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="model processes on this machine behind one HTTP "
                   "process, each batch of requests to whichever is free (default 1: the model runs in the "
                   "HTTP process)")  # fmt: skip
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                   help="log every request: method, path, status, seconds, request id, client (default: on)")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="text: readable lines; json: one JSON object per line (an access record per request "
                   "with time, method, path template, status, seconds, request_id, client)")  # fmt: skip
    p.add_argument("--api-keys", help="the key file (`vidrec keys create`) the writes need (default: "
                   "$VIDREC_API_KEYS)")  # fmt: skip
    p.add_argument("--no-auth", action="store_true", help="serve without authentication (anyone may write)")
    p.add_argument("--rate-limit", help="requests per key, e.g. 100/second, '' for none (default: the key file's, "
                   "else 100/second)")  # fmt: skip
    p.add_argument("--max-body-bytes", type=int, help="larger request bodies get 413 (default: 4 MiB)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="reload when MODEL_DIR/LATEST names a new "
                   "version, checked every SECONDS (default: reload only on POST /admin/reload or SIGHUP)")
    p.set_defaults(func=_serve)

    p = command(sub, "keys", "create, list or revoke the service's API keys",
                 "The key file keeps each key's SHA-256, name and scopes; `create` prints the new key once.")
    p.add_argument("action", choices=["create", "list", "revoke"], help="what to do with the key file")
    p.add_argument("name", nargs="?", help="the key's name (create, revoke)")
    p.add_argument("--file", required=True, help="the key file (JSON; keeps only the keys' SHA-256) (required)")
    p.add_argument("--scopes", type=lambda s: [x for x in s.split(",") if x], default=["events:write"],
                   help="comma-separated: events:write, catalogue:write, recommendations:read, service:reload")
    p.set_defaults(func=_keys)

    p = command(sub, "demo", "run the main job on the built-in simulated platform",
                 "Simulate, validate, split, train, evaluate beside the baselines and the oracle, show three "
                 "users' slates and write the report: what `make demo` runs.")  # fmt: skip
    p.add_argument("--out", default="runs/demo", help="the folder everything is written to")
    p.set_defaults(func=_demo)


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
    args.started = time.perf_counter()
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
