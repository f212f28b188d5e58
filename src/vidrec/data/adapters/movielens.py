"""MovieLens ratings as a video log: ML-100K, ML-1M and ML-latest / 20M / 25M.

The variant is detected from the files present: ``u.data`` (ML-100K), ``ratings.dat``
(ML-1M; also ML-10M, whose missing ``users.dat`` is tolerated) or ``ratings.csv``
(ML-latest, ML-20M, ML-25M). MovieLens is a ratings log, not a watch log, so it is
mapped onto our events by one fixed rule:

* events: every rating becomes one ``watch`` of the movie at the rating time, with
  ``watch_seconds`` = 1.0 x duration for rating >= 4 (a completed watch),
  0.6 x duration for 3 <= rating < 4, and 0.3 x duration for rating < 3, which also
  gives a ``dislike`` event at the same time. A rating of 5 also gives a ``like`` at
  the same time. Half-star ratings (ML-latest) follow the same thresholds. The rating
  is kept on every event as the extra column ``rating`` (Float64). A rating outside
  0.5..5 is a bad value: its watch gets no ``watch_seconds`` (validation quarantines it).
* videos: ``duration_seconds`` is a nominal 6000 s (100 minutes) for every movie,
  since MovieLens has no durations. ``category`` is the first listed genre ("unknown"
  if none) and ``tags`` all genres. MovieLens has no creators, so ``creator_id`` is the
  stand-in ``"ml-creator-" + video_id``: one creator per movie, so creator rules (caps,
  fatigue, fairness) neither bite nor mislead, as a genre stand-in would. ``title`` comes from the item file; there is
  no ``language``. ``uploaded_at`` is the earlier of the release date and the movie's
  first rating (the first rating if there is no date), because release dates are coarse
  and some ratings predate them; ML-1M and ML-latest only give a year in the title,
  read as 1 January of that year. ``available`` is true. Movies rated but absent from
  the item file are added with no title and no genres.
* users: ``signed_up_at`` is the user's first rating time. ML-100K and ML-1M give age,
  gender, occupation and zip: age becomes ``age_bucket`` ("<18", "18-24", "25-34",
  "35-44", "45-54", "55+"; the ML-1M codes 45 and 50 both map to "45-54"), and
  ``gender``, ``occupation`` and ``zip`` are kept as extra columns. Country is not
  known and is left out. ML-latest has no users file: users are built from the rating
  user ids (``__source_row__`` is then the first ratings row of the user).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from vidrec.data.adapters.base import (
    PARSE_ERROR,
    SOURCE_ROW,
    RawTables,
    canonical_order,
    csv_columns,
    first_seen,
    from_epoch,
    int_id,
    plural,
    read_csv_checked,
    read_lines,
    require_columns,
    require_file,
    with_parsed,
)
from vidrec.data.schema import TIMESTAMP
from vidrec.errors import DataError

NOMINAL_DURATION_SECONDS = 6000.0
"""Every movie is taken to last 100 minutes: MovieLens records no durations."""
COMPLETED_SHARE, PARTIAL_SHARE, ABANDONED_SHARE = 1.0, 0.6, 0.3
CREATOR_PREFIX = "ml-creator-"
VARIANT_FILES: dict[str, str] = {"ml-100k": "u.data", "ml-1m": "ratings.dat", "ml-latest": "ratings.csv"}
HINT = "pass the folder of an unpacked MovieLens archive (ml-100k, ml-1m, ml-latest, ml-20m or ml-25m)"

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
"""The ML-100K genre flags in column order, used only when ``u.genre`` is missing."""

ML1M_AGE_BUCKETS: dict[int, str] = {
    1: "<18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-54", 50: "45-54", 56: "55+"
}
ML1M_OCCUPATIONS: dict[int, str] = dict(enumerate((
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)))  # fmt: skip


def load(path: Path) -> RawTables:
    """Read a MovieLens folder (or a file inside one) into canonical raw tables."""
    root, variant = detect_variant(Path(path))
    reader = {"ml-100k": _read_100k, "ml-1m": _read_1m, "ml-latest": _read_latest}[variant]
    ratings, items, users, sources = reader(root)
    notes = [f"MovieLens {variant} detected in {root}"]
    if variant != "ml-100k":
        notes.append("release date: 1 January of the year in the title")
    tables = _assemble(ratings, items, users, notes)
    tables.sources = sources
    return tables


def detect_variant(path: Path) -> tuple[Path, str]:
    """The folder holding the ratings file and the variant its name reveals."""
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise DataError(f"{path}: no such file or folder", HINT)
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for folder in candidates:
        for variant, name in VARIANT_FILES.items():
            if (folder / name).is_file():
                return folder, variant
    raise DataError(
        f"{root}: no MovieLens ratings file found (looked for {', '.join(VARIANT_FILES.values())})", HINT
    )


# --- readers: each returns ratings, items, users (or None) and the source files --------


def _ratings(df: pl.DataFrame) -> pl.DataFrame:
    """Parse user_id, video_id, rating, ts (epoch seconds) given as text or numbers."""
    df = with_parsed(
        df,
        {
            "user_id": int_id(pl.col("user_id"), df.schema["user_id"]),
            "video_id": int_id(pl.col("video_id"), df.schema["video_id"]),
            "rating": _number(pl.col("rating"), df.schema["rating"]),
            "ts": from_epoch(_number(pl.col("ts"), df.schema["ts"])),
        },
    )
    bad = pl.col("rating").is_not_null() & ~pl.col("rating").is_between(0.5, 5.0)
    reason = pl.format("rating {} outside 0.5..5", pl.col("rating"))
    merged = pl.concat_str([pl.col(PARSE_ERROR), pl.when(bad).then(reason)], separator="; ", ignore_nulls=True)
    return df.with_columns(pl.when(merged == "").then(None).otherwise(merged).alias(PARSE_ERROR))


def _number(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_numeric():
        return expr.cast(pl.Float64)
    return expr.str.strip_chars().cast(pl.Float64, strict=False)


def _genre_list(expr: pl.Expr) -> pl.Expr:
    """``'A|B'`` -> ``['A', 'B']``; ``'(no genres listed)'`` and blanks -> ``[]``."""
    parts = expr.fill_null("").str.split("|").list.eval(pl.element().str.strip_chars())
    return parts.list.filter((pl.element() != "") & (pl.element() != "(no genres listed)"))


def _year_release(title: pl.Expr) -> pl.Expr:
    """1 January of the year in a title such as ``'Heat (1995)'``; null without a year."""
    year = title.str.extract(r"\((\d{4})[^)]*\)\s*$", 1).cast(pl.Int32, strict=False)
    return pl.date(year, 1, 1).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _read_100k(root: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None, dict[str, str]]:
    data = require_file(root / "u.data", "ML-100K ratings", HINT)
    item = require_file(root / "u.item", "ML-100K movies", HINT)
    user = require_file(root / "u.user", "ML-100K users", HINT)
    ratings = _ratings(read_lines(data, ["user_id", "video_id", "rating", "ts"], "\t"))
    genres = _genre_names_100k(root / "u.genre")
    flags = [f"__g{i}" for i in range(len(genres))]
    items = read_lines(item, ["video_id", "title", "release", "video_release", "imdb_url", *flags], "|", "latin-1")
    chosen = pl.concat_list([pl.when(pl.col(f) == "1").then(pl.lit(g)) for f, g in zip(flags, genres)])
    items = with_parsed(
        items.with_columns(genres=chosen.list.drop_nulls()),
        {
            "video_id": int_id(pl.col("video_id")),
            "release": pl.col("release").str.strptime(pl.Datetime("us"), "%d-%b-%Y", strict=False)
            .dt.replace_time_zone("UTC"),
        },
    ).select("video_id", "title", "genres", "release", SOURCE_ROW, PARSE_ERROR)
    users = read_lines(user, ["user_id", "age", "gender", "occupation", "zip"], "|", "latin-1")
    age = pl.col("age").cast(pl.Int64, strict=False)
    users = with_parsed(users, {"user_id": int_id(pl.col("user_id")), "age": age})
    users = users.with_columns(age_bucket=_age_bucket(pl.col("age"))).drop("age")
    return ratings, items, users, {"events": str(data), "videos": str(item), "users": str(user)}


def _genre_names_100k(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return GENRES_100K
    df = read_lines(path, ["genre", "index"], "|", "latin-1")
    df = df.with_columns(pl.col("index").cast(pl.Int64, strict=False)).drop_nulls("index").sort("index")
    return tuple(df["genre"].to_list())


def _age_bucket(age: pl.Expr) -> pl.Expr:
    return (
        pl.when(age < 18).then(pl.lit("<18"))
        .when(age < 25).then(pl.lit("18-24"))
        .when(age < 35).then(pl.lit("25-34"))
        .when(age < 45).then(pl.lit("35-44"))
        .when(age < 55).then(pl.lit("45-54"))
        .when(age >= 55).then(pl.lit("55+"))
    )  # fmt: skip


def _read_1m(root: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None, dict[str, str]]:
    data = require_file(root / "ratings.dat", "ML-1M ratings", HINT)
    item = require_file(root / "movies.dat", "ML-1M movies", HINT)
    ratings = _ratings(read_lines(data, ["user_id", "video_id", "rating", "ts"], "::"))
    items = read_lines(item, ["video_id", "title", "genres"], "::", "latin-1")
    items = with_parsed(items, {"video_id": int_id(pl.col("video_id"))}).with_columns(
        genres=_genre_list(pl.col("genres")), release=_year_release(pl.col("title"))
    )
    sources = {"events": str(data), "videos": str(item), "users": str(data)}
    user = root / "users.dat"
    if not user.is_file():  # ML-10M ships no users file
        return ratings, items, None, sources
    users = read_lines(user, ["user_id", "gender", "age", "occupation", "zip"], "::", "latin-1")
    users = with_parsed(
        users,
        {
            "user_id": int_id(pl.col("user_id")),
            "age": pl.col("age").cast(pl.Int64, strict=False),
            "occupation": pl.col("occupation").cast(pl.Int64, strict=False),
        },
    )
    users = users.with_columns(
        age_bucket=pl.col("age").replace_strict(ML1M_AGE_BUCKETS, default=None, return_dtype=pl.String),
        occupation=pl.col("occupation").replace_strict(ML1M_OCCUPATIONS, default=None, return_dtype=pl.String),
    ).drop("age")
    return ratings, items, users, {**sources, "users": str(user)}


def _read_latest(root: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None, dict[str, str]]:
    data = require_file(root / "ratings.csv", "MovieLens ratings", HINT)
    item = require_file(root / "movies.csv", "MovieLens movies", HINT)
    rating_cols = {"userId": pl.Int64(), "movieId": pl.Int64(), "rating": pl.Float64(), "timestamp": pl.Int64()}
    require_columns(data, csv_columns(data), list(rating_cols), HINT)
    raw = read_csv_checked(data, rating_cols)
    ratings = _ratings(raw.rename({"userId": "user_id", "movieId": "video_id", "timestamp": "ts"}))
    item_cols = {"movieId": pl.Int64(), "title": pl.String(), "genres": pl.String()}
    require_columns(item, csv_columns(item), list(item_cols), HINT)
    items = read_csv_checked(item, item_cols).rename({"movieId": "video_id"})
    items = with_parsed(items, {"video_id": int_id(pl.col("video_id"), items.schema["video_id"])}).with_columns(
        genres=_genre_list(pl.col("genres")), release=_year_release(pl.col("title"))
    )
    return ratings, items, None, {"events": str(data), "videos": str(item), "users": str(data)}


# --- the mapping ------------------------------------------------------------------------


def ratings_to_events(ratings: pl.DataFrame) -> pl.DataFrame:
    """One watch per rating, plus a like for 5 and a dislike below 3, at the rating time."""
    r = pl.col("rating")
    valid = r.is_between(0.5, 5.0).fill_null(False)
    share = (
        pl.when(~valid).then(None)
        .when(r >= 4).then(COMPLETED_SHARE)
        .when(r >= 3).then(PARTIAL_SHARE)
        .otherwise(ABANDONED_SHARE)
    )  # fmt: skip
    base = ratings.select("user_id", "video_id", "ts", "rating", SOURCE_ROW, PARSE_ERROR)
    watch = base.with_columns(event=pl.lit("watch"), watch_seconds=share * NOMINAL_DURATION_SECONDS)
    no_seconds = pl.lit(None, pl.Float64).alias("watch_seconds")
    like = base.filter(r == 5.0).with_columns(event=pl.lit("like"), watch_seconds=no_seconds)
    dislike = base.filter(valid & (r < 3)).with_columns(event=pl.lit("dislike"), watch_seconds=no_seconds)
    events = pl.concat([watch, like, dislike], how="vertical").sort(SOURCE_ROW, maintain_order=True)
    return canonical_order(events.with_columns(pl.col("ts").cast(TIMESTAMP)), "events")


def _assemble(
    ratings: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame | None, notes: list[str]
) -> RawTables:
    events = ratings_to_events(ratings)
    counts = dict(events.group_by("event").len().iter_rows())
    notes.append(
        f"{plural(ratings.height, 'rating')} -> {plural(counts.get('watch', 0), 'watch event')}, "
        f"{plural(counts.get('like', 0), 'like')} (rating 5), "
        f"{plural(counts.get('dislike', 0), 'dislike')} (rating below 3)"
    )
    notes.append(
        f"duration: MovieLens has none, every movie is given a nominal {NOMINAL_DURATION_SECONDS:.0f} s "
        "(100 min); watch_seconds = 1.0 / 0.6 / 0.3 x duration for ratings >= 4 / >= 3 / below 3"
    )
    notes.append(f"creator_id: MovieLens has none, stand-in '{CREATOR_PREFIX}' + movie id (one per movie)")
    videos = _videos(ratings, items, notes)
    users_out = _users(ratings, users, notes)
    return RawTables(events=events, videos=videos, users=users_out, notes=notes)


def _videos(ratings: pl.DataFrame, items: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    items = items.select("video_id", "title", "genres", "release", SOURCE_ROW, PARSE_ERROR)
    first = first_seen(ratings.filter(pl.col("video_id").is_not_null()), "video_id")
    early = ratings.join(items.select("video_id", "release"), on="video_id").filter(pl.col("ts") < pl.col("release"))
    if early.height:
        notes.append(
            f"{plural(early.height, 'rating')} on {plural(early['video_id'].n_unique(), 'movie')} dated before "
            "the release date: upload time set to the movie's first rating"
        )
    missing = first.join(items, on="video_id", how="anti").select("video_id")
    if missing.height:
        notes.append(
            f"{plural(missing.height, 'rated movie')} missing from the movie file: added with no title and no "
            "genres, upload time = first rating"
        )
    videos = pl.concat([items, missing], how="diagonal_relaxed").join(first, on="video_id", how="left")
    no_date = videos.filter(pl.col("release").is_null())
    if no_date.height:
        dated = no_date.filter(pl.col("first_ts").is_not_null()).height
        notes.append(f"{plural(no_date.height, 'movie')} without a release date: upload time = first rating")
        if dated < no_date.height:
            notes.append(f"{plural(no_date.height - dated, 'movie')} with neither a date nor a rating: no upload time")
    category = pl.col("genres").fill_null([]).list.first().fill_null("unknown")
    earliest = pl.min_horizontal("release", "first_ts")
    videos = videos.with_columns(
        category=category,
        tags=pl.col("genres").fill_null([]).cast(pl.List(pl.String)),
        creator_id=pl.lit(CREATOR_PREFIX) + pl.col("video_id"),
        duration_seconds=pl.lit(NOMINAL_DURATION_SECONDS),
        uploaded_at=earliest.cast(TIMESTAMP),
        available=pl.lit(True),
    )
    return canonical_order(videos.drop("genres", "release", "first_ts", "first_row"), "videos")


def _users(ratings: pl.DataFrame, users: pl.DataFrame | None, notes: list[str]) -> pl.DataFrame:
    first = first_seen(ratings.filter(pl.col("user_id").is_not_null()), "user_id")
    if users is None:
        notes.append("users: no users file, built from the rating user ids (signed_up_at = first rating)")
        built = first.with_columns(pl.col("first_row").alias(SOURCE_ROW), pl.lit(None, pl.String).alias(PARSE_ERROR))
        return canonical_order(built.rename({"first_ts": "signed_up_at"}).drop("first_row"), "users")
    notes.append(
        "users: signed_up_at = first rating; age -> age_bucket; gender, occupation, zip kept; country unknown"
    )
    missing = first.join(users, on="user_id", how="anti").select("user_id")
    if missing.height:
        notes.append(f"{plural(missing.height, 'rating user')} missing from the users file: added without profile")
    out = pl.concat([users, missing], how="diagonal_relaxed").join(first, on="user_id", how="left")
    silent = out.filter(pl.col("first_ts").is_null() & pl.col("user_id").is_not_null()).height
    if silent:
        notes.append(f"{plural(silent, 'user')} without ratings: no signed_up_at")
    return canonical_order(out.rename({"first_ts": "signed_up_at"}).drop("first_row"), "users")
