"""Negatives that look like the serving task: what the first stage would have retrieved.

At request time the ranker re-sorts O(hundreds) of candidates that the two-tower
already judged plausible; uniformly or popularity-sampled negatives are far easier
than those, so a ranker trained only on them learns "popular vs obscure" and little
about the choice it actually faces. For each watch example at ``ts`` this module
retrieves what the two-tower (the scoring stage's feature model, trained on events
before the ranker period) ranks highest for the user's state at ``ts`` (completed
history strictly before ``ts``), and draws label-0 examples among the top ``pool``
videos the user never interacted with (in the whole log, so a video watched later
is never a false negative) and that were uploaded by ``ts``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix

from vidrec.data.schema import TIMESTAMP
from vidrec.features.point_in_time import EventTables, histories_at
from vidrec.scoring.base import EmbeddingSource
from vidrec.scoring.examples import EXAMPLE_SCHEMA, zero_labels

_BLOCK = 1 << 24  # scores held at once: (states, n_videos) floats per block, about 64 MB


def retrieved_negatives(
    watches: pl.DataFrame,
    events: pl.DataFrame,
    videos: pl.DataFrame,
    tables: EventTables,
    embeddings: EmbeddingSource,
    per_watch: int,
    pool: int,
    seed: int = 0,
) -> pl.DataFrame:
    """``per_watch`` all-zero-label examples ``user_id, video_id, ts, *LABELS`` per row of ``watches``.

    ``tables`` must be built from ``events`` (uncompacted) so histories are read as of
    each ``ts``. Draws are uniform among the user's top ``pool`` eligible videos by the
    two-tower dot product; duplicates within one watch are dropped.
    """
    if per_watch < 1 or watches.is_empty():
        return pl.DataFrame(schema=EXAMPLE_SCHEMA)
    rng = np.random.default_rng(seed)
    catalogue = videos.select("video_id", uploaded=pl.col("uploaded_at").cast(TIMESTAMP))
    vids = catalogue["video_id"]
    uploaded = catalogue["uploaded"].dt.epoch("us").to_numpy()  # (V,)
    vectors = np.asarray(embeddings.video_vectors(vids), dtype=np.float32)  # (V, d)
    rows = histories_at(watches.select("user_id", pl.col("ts").cast(TIMESTAMP)), tables)
    keyed = rows.with_columns(_h=pl.col("history").hash())
    states = keyed.unique(["user_id", "ts", "_h"], keep="first", maintain_order=True).with_row_index("_s")
    touched = _touched(events, states["user_id"], vids)  # (S, V) sparse
    top = np.empty((states.height, min(pool, len(vids))), dtype=np.int64)  # (S, pool)
    ts_us = states["ts"].dt.epoch("us").to_numpy()
    step = max(1, _BLOCK // max(len(vids), 1))
    for s in range(0, states.height, step):
        chunk = states.slice(s, step)
        users = np.asarray(embeddings.user_vectors(chunk["user_id"], chunk["history"]), dtype=np.float32)
        scores = users @ vectors.T  # (chunk, V)
        scores[touched[s : s + step].toarray()] = -np.inf
        scores[uploaded[None, :] > ts_us[s : s + step, None]] = -np.inf
        part = np.argpartition(-scores, top.shape[1] - 1, axis=1)[:, : top.shape[1]]
        bad = ~np.isfinite(np.take_along_axis(scores, part, axis=1))
        top[s : s + step] = np.where(bad, -1, part)
    state_of = keyed.join(states.select("user_id", "ts", "_h", "_s"), on=["user_id", "ts", "_h"], how="left",
                          maintain_order="left")["_s"].to_numpy()  # fmt: skip
    pick = top[np.repeat(state_of, per_watch), rng.integers(0, top.shape[1], size=len(state_of) * per_watch)]
    out = pl.DataFrame(
        {
            "user_id": np.repeat(rows["user_id"].to_numpy(), per_watch),
            "_v": pick,
            "_ts": np.repeat(rows["ts"].dt.epoch("us").to_numpy(), per_watch),
        }
    ).filter(pl.col("_v") >= 0)
    out = out.with_columns(
        video_id=vids.gather(out["_v"]), ts=pl.from_epoch("_ts", "us").dt.replace_time_zone("UTC").cast(TIMESTAMP)
    )
    return zero_labels(out.unique(["user_id", "video_id", "ts"], maintain_order=True))


def _touched(events: pl.DataFrame, state_users: pl.Series, vids: pl.Series) -> csr_matrix:
    """(states, videos) boolean: the state's user interacted with the video anywhere in ``events``."""
    pairs = events.filter(pl.col("event") != "impression").select("user_id", "video_id").unique()
    col = pl.DataFrame({"video_id": vids, "_c": np.arange(len(vids), dtype=np.int64)})
    row = pl.DataFrame({"user_id": state_users, "_r": np.arange(len(state_users), dtype=np.int64)})
    hit = row.join(pairs, on="user_id", how="inner").join(col, on="video_id", how="inner")
    data = np.ones(hit.height, dtype=bool)
    return csr_matrix((data, (hit["_r"].to_numpy(), hit["_c"].to_numpy())), shape=(len(state_users), len(vids)))
