"""KuaiRec 2.0 (Kuaishou short videos) as canonical tables.

Reads the ``data/`` folder of the KuaiRec 2.0 archive: ``big_matrix.csv`` or
``small_matrix.csv`` (option ``matrix="big" | "small"``; by default the big matrix when
present), ``item_categories.csv``, ``item_daily_features.csv`` and
``user_features.csv``. The mapping:

* events: each matrix row is one ``watch`` at ``timestamp`` (epoch seconds, UTC) with
  ``watch_seconds = play_duration / 1000``; ``watch_ratio`` is kept as an extra column.
  Exact duplicate rows and rows with no timestamp are passed on untouched (validation
  quarantines them with a reason); the notes count them.
* videos: ``duration_seconds`` is the matrix ``video_duration / 1000`` (the per-video
  median where it varies), so completion equals ``watch_ratio``; a video absent from
  the matrix falls back to the daily features' ``video_duration`` (also milliseconds).
  ``creator_id`` is ``author_id``; ``category`` is the first ``feat`` id as
  ``"cat-<id>"`` and ``tags`` all feat ids in that form plus ``video_tag_name`` where
  present. ``uploaded_at`` is ``upload_dt``, a calendar date read as midnight in
  ``timezone`` (default ``"Asia/Shanghai"``, where Kuaishou logs its dates), moved to
  the video's first event when that comes earlier (dates are coarse). ``available`` is
  true when the latest ``visible_status`` is ``"public"`` (any case), false for any
  other status, true when there is none. Per-video values of the daily table are its
  latest non-empty ones. A video in the matrix but in no item table still comes
  through: duration from the matrix, upload time = first event, creator
  ``"unknown-creator-<video_id>"``, category ``"unknown"``.
* users: ``user_features.csv`` with every column kept as an extra; ``signed_up_at`` is
  the user's first event (``register_days`` has no reference date). Users in the matrix
  but not in the features file are added without features.

``__source_row__`` on videos is the row in ``item_categories.csv`` (null for videos
not listed there); on users, the row in ``user_features.csv``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from vidrec.data.adapters.base import (
    PARSE_ERROR,
    SOURCE_ROW,
    RawTables,
    canonical_order,
    check_timezone,
    csv_columns,
    first_seen,
    from_epoch,
    infer_numeric,
    int_id,
    plural,
    read_csv_checked,
    require_columns,
    require_file,
    to_utc,
    with_parsed,
)
from vidrec.data.schema import TIMESTAMP
from vidrec.errors import DataError

HINT = "pass the data/ folder of the KuaiRec 2.0 archive (it holds big_matrix.csv or small_matrix.csv)"
MATRIX_FILES: dict[str, str] = {"big": "big_matrix.csv", "small": "small_matrix.csv"}
MATRIX_TYPES: dict[str, pl.DataType] = {
    "user_id": pl.Int64(), "video_id": pl.Int64(), "play_duration": pl.Float64(),
    "video_duration": pl.Float64(), "timestamp": pl.Float64(),
}  # fmt: skip
DAILY_TYPES: dict[str, pl.DataType] = {
    "video_id": pl.Int64(), "date": pl.String(), "author_id": pl.Int64(), "upload_dt": pl.String(),
    "visible_status": pl.String(), "video_duration": pl.Float64(), "video_tag_name": pl.String(),
    "video_type": pl.String(), "upload_type": pl.String(), "music_id": pl.Int64(),
}  # fmt: skip
DAILY_REQUIRED = ("video_id", "date", "author_id", "upload_dt")
NO_CREATOR_PREFIX = "unknown-creator-"


def load(path: Path, matrix: str = "auto", timezone: str = "Asia/Shanghai") -> RawTables:
    """Read a KuaiRec 2.0 data folder (or one of its matrix files) into raw tables."""
    check_timezone(timezone, "kuairec timezone option")
    root, matrix_file = _locate(Path(path), matrix)
    notes = [f"KuaiRec: events from {matrix_file.name}"]
    events = _events(matrix_file, notes)
    sources = {"events": str(matrix_file)}
    videos = _videos(root, events, timezone, notes)
    events = events.drop("video_duration")
    sources["videos"] = ", ".join([str(p) for p in _item_files(root)] + [str(matrix_file)])
    users, users_file = _users(root, events, notes)
    sources["users"] = users_file or str(matrix_file)
    return RawTables(events=events, videos=videos, users=users, sources=sources, notes=notes)


def _locate(path: Path, matrix: str) -> tuple[Path, Path]:
    """The data folder and the matrix file to read."""
    if matrix not in ("auto", *MATRIX_FILES):
        raise DataError(f"unknown KuaiRec matrix {matrix!r}", "use matrix=big, matrix=small or leave it out")
    if path.is_file():
        return path.parent, path
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder", HINT)
    root = path / "data" if not _matrices(path) and (path / "data").is_dir() else path
    found = _matrices(root)
    if matrix != "auto":
        return root, require_file(root / MATRIX_FILES[matrix], f"the KuaiRec {matrix} matrix", HINT)
    if not found:
        raise DataError(f"{root}: no big_matrix.csv or small_matrix.csv found", HINT)
    return root, found[0]


def _matrices(folder: Path) -> list[Path]:
    return [folder / name for name in MATRIX_FILES.values() if (folder / name).is_file()]


def _events(path: Path, notes: list[str]) -> pl.DataFrame:
    """One watch per matrix row; nothing dropped, duplicates and missing times counted."""
    columns = csv_columns(path)
    require_columns(path, columns, list(MATRIX_TYPES), HINT)
    dtypes = {**MATRIX_TYPES, **({"watch_ratio": pl.Float64()} if "watch_ratio" in columns else {})}
    raw = read_csv_checked(path, dtypes)
    events = with_parsed(
        raw, {k: int_id(pl.col(k), raw.schema[k]) for k in ("user_id", "video_id")}
    ).with_columns(
        ts=from_epoch(pl.col("timestamp")).cast(TIMESTAMP),
        event=pl.lit("watch"),
        watch_seconds=pl.col("play_duration").fill_nan(None) / 1000.0,
        video_duration=pl.col("video_duration").fill_nan(None) / 1000.0,
    )
    duplicates = raw.height - raw.select(list(dtypes)).unique().height
    untimed = events.filter(pl.col("ts").is_null()).height
    notes.append(
        f"{plural(raw.height, 'matrix row')} -> {plural(raw.height, 'watch event')}; watch_seconds = "
        "play_duration / 1000; passed on for validation: "
        f"{plural(duplicates, 'exact duplicate row')}, {plural(untimed, 'row')} without a timestamp"
    )
    return canonical_order(events.drop("play_duration", "timestamp"), "events")


def _videos(root: Path, events: pl.DataFrame, timezone: str, notes: list[str]) -> pl.DataFrame:
    """Join the matrix, item_categories.csv and item_daily_features.csv per video."""
    seen = events.filter(pl.col("video_id").is_not_null())
    played = first_seen(seen, "video_id").join(_durations(seen, notes), on="video_id", how="left")
    cats, daily = _categories(root), _daily(root, timezone)
    ids = pl.concat([t.select("video_id") for t in (played, cats, daily) if t is not None])
    ids = ids.filter(pl.col("video_id").is_not_null()).unique(maintain_order=True)
    videos = ids.join(cats, on="video_id", how="left") if cats is not None else ids
    if cats is not None:  # rows whose video_id is unreadable still go to validation
        videos = pl.concat([videos, cats.filter(pl.col("video_id").is_null())], how="diagonal_relaxed")
    videos = videos.join(daily, on="video_id", how="left") if daily is not None else videos
    videos = videos.join(played, on="video_id", how="left")
    for column, dtype in (("feats", pl.List(pl.String)), ("author_id", pl.String), ("upload_day", TIMESTAMP),
                          ("visible_status", pl.String), ("video_tag_name", pl.String),
                          ("daily_duration", pl.Float64), (SOURCE_ROW, pl.Int64), (PARSE_ERROR, pl.String)):
        if column not in videos.columns:
            videos = videos.with_columns(pl.lit(None, dtype).alias(column))
    _video_notes(videos, notes)
    feats = pl.col("feats").fill_null([]).list.eval(pl.lit("cat-") + pl.element())
    tag_name = pl.col("video_tag_name")
    videos = videos.with_columns(
        creator_id=pl.col("author_id").fill_null(pl.lit(NO_CREATOR_PREFIX) + pl.col("video_id")),
        category=feats.list.first().fill_null("unknown"),
        tags=pl.when(tag_name.is_not_null()).then(pl.concat_list(feats, tag_name)).otherwise(feats),
        duration_seconds=pl.col("video_duration").fill_null(pl.col("daily_duration") / 1000.0),
        uploaded_at=pl.min_horizontal("upload_day", "first_ts").cast(TIMESTAMP),
        available=pl.col("visible_status").str.to_lowercase().str.strip_chars().eq("public").fill_null(True),
    )
    drop = ["feats", "author_id", "upload_day", "visible_status", "video_tag_name", "daily_duration",
            "video_duration", "first_ts", "first_row"]
    return canonical_order(videos.drop(drop), "videos")


def _durations(seen: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    per_video = seen.group_by("video_id").agg(
        video_duration=pl.col("video_duration").median(), __distinct__=pl.col("video_duration").drop_nulls().n_unique()
    )
    varying = per_video.filter(pl.col("__distinct__") > 1).height
    if varying:
        notes.append(f"{plural(varying, 'video')} with varying video_duration in the matrix: the median is used")
    return per_video.drop("__distinct__")


def _item_files(root: Path) -> list[Path]:
    return [root / n for n in ("item_categories.csv", "item_daily_features.csv") if (root / n).is_file()]


def _categories(root: Path) -> pl.DataFrame | None:
    path = root / "item_categories.csv"
    if not path.is_file():
        return None
    require_columns(path, csv_columns(path), ["video_id", "feat"], HINT)
    df = read_csv_checked(path, {"video_id": pl.Int64(), "feat": pl.String()})
    df = with_parsed(df, {"video_id": int_id(pl.col("video_id"), df.schema["video_id"])})
    return df.with_columns(feats=pl.col("feat").str.extract_all(r"-?\d+")).drop("feat")


def _daily(root: Path, timezone: str) -> pl.DataFrame | None:
    """Per video: the latest non-empty daily values, the median duration, the upload date."""
    path = root / "item_daily_features.csv"
    if not path.is_file():
        return None
    columns = csv_columns(path)
    require_columns(path, columns, DAILY_REQUIRED, HINT)
    df = read_csv_checked(path, {c: t for c, t in DAILY_TYPES.items() if c in columns})
    day = pl.col("upload_dt").str.strip_chars()
    parsed = pl.coalesce(
        day.str.strptime(pl.Datetime("us"), "%Y-%m-%d", strict=False),
        day.str.strptime(pl.Datetime("us"), "%Y%m%d", strict=False),
    )
    df = with_parsed(df, {"video_id": int_id(pl.col("video_id"), df.schema["video_id"]), "upload_dt": parsed})
    df = df.with_columns(upload_dt=to_utc(pl.col("upload_dt"), pl.Datetime("us"), timezone))
    latest = [
        pl.col(c).drop_nulls().last().alias(c)
        for c in ("visible_status", "video_tag_name", "video_type", "upload_type", "music_id")
        if c in df.columns
    ]
    return (
        df.filter(pl.col("video_id").is_not_null())
        .sort("video_id", "date", nulls_last=False)
        .group_by("video_id", maintain_order=True)
        .agg(
            *latest,
            author_id=pl.col("author_id").drop_nulls().last().cast(pl.String),
            upload_day=pl.col("upload_dt").min(),
            daily_duration=pl.col("video_duration").fill_nan(None).median()
            if "video_duration" in df.columns else pl.lit(None, pl.Float64),
        )
    )


def _video_notes(videos: pl.DataFrame, notes: list[str]) -> None:
    """Count the videos each fallback touched."""
    checks = {
        "in the matrix but in no item table (creator, category unknown; upload time = first event)":
            pl.col("first_ts").is_not_null() & pl.col(SOURCE_ROW).is_null() & pl.col("author_id").is_null(),
        "without upload_dt (upload time = first event)": pl.col("upload_day").is_null(),
        "with events before upload_dt (upload time moved to the first event)":
            pl.col("first_ts") < pl.col("upload_day"),
        "without visible_status (taken as available)": pl.col("visible_status").is_null(),
        "not in the matrix (duration from the daily features)": pl.col("first_ts").is_null(),
    }  # fmt: skip
    for text, condition in checks.items():
        count = videos.filter(condition).height
        if count:
            notes.append(f"{plural(count, 'video')} {text}")


def _users(root: Path, events: pl.DataFrame, notes: list[str]) -> tuple[pl.DataFrame, str | None]:
    """user_features.csv with every column kept, plus users seen only in the matrix.

    Returns the users and their source file (None when they come from the matrix alone).
    """
    first = first_seen(events.filter(pl.col("user_id").is_not_null()), "user_id")
    notes.append("users: signed_up_at = first event; user features kept as extra columns")
    path = root / "user_features.csv"
    if not path.is_file():
        notes.append("no user_features.csv: users built from the matrix user ids")
        built = first.rename({"first_ts": "signed_up_at", "first_row": SOURCE_ROW})
        return canonical_order(built.with_columns(pl.lit(None, pl.String).alias(PARSE_ERROR)), "users"), None
    require_columns(path, csv_columns(path), ["user_id"], HINT)
    users = read_csv_checked(path, {"user_id": pl.String()}, keep_extra=True)
    users = with_parsed(users, {"user_id": int_id(pl.col("user_id"))})
    users = infer_numeric(users, [c for c in users.columns if c != "user_id" and not c.startswith("__")])
    missing = first.join(users, on="user_id", how="anti").select("user_id")
    if missing.height:
        notes.append(f"{plural(missing.height, 'matrix user')} missing from user_features.csv: added without features")
    out = pl.concat([users, missing], how="diagonal_relaxed").join(first.drop("first_row"), on="user_id", how="left")
    return canonical_order(out.rename({"first_ts": "signed_up_at"}), "users"), str(path)
