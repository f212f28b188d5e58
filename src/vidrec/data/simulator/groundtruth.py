"""The truth behind a simulated data set: what each user would do with each video, when.

``GroundTruth`` evaluates the simulator's own response model (``behaviour.py``), so its
probabilities are the ones the simulated outcomes were drawn from. Evaluation uses it to
score recommendations against the best any model could do (``best_videos``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.data.ids import IdMap
from vidrec.data.simulator.behaviour import BehaviourParams, log_affinity, response_probabilities
from vidrec.data.simulator.vocab import language_penalty_table
from vidrec.errors import DataError

CELLS_PER_CHUNK = 1 << 22  # users x videos scored at once by best_videos (~32 MB per matrix)
TimeLike = datetime | np.datetime64 | np.ndarray | pl.Series | Sequence[datetime]


@dataclass
class PolicyTrace:
    """How the logging policy chose impressions each day: the truth behind exposure in a log.

    The policy shows a video from the personalised source with probability
    ``personal_share * estimate[user, topic] * weight / topic weight``, from the popular
    source ``popular_share * weight / total weight`` and from the fresh source uniformly over
    ``fresh_pool``; the estimate is ``(1 - noise_weight) * interests + noise_weight * noise``.
    """

    weights: np.ndarray  # (days, videos) float32: popularity weight at the start of each day, 0 if not showable
    fresh_pool: np.ndarray  # (days, videos) bool
    noise: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (users, topics)
    personal_share: float = 0.0
    fresh_share: float = 0.0
    noise_weight: float = 0.0
    start_us: int = 0  # midnight of day 0

    @classmethod
    def empty(cls, days: int, videos: int) -> PolicyTrace:
        return cls(np.zeros((days, videos), np.float32), np.zeros((days, videos), bool))

    def record(self, day: int, policy, views: np.ndarray) -> None:
        """Keep ``policy``'s (a :class:`LoggingPolicy`) weights and fresh pool for ``day``."""
        self.weights[day] = policy.weights(day, views)
        self.fresh_pool[day] = policy.fresh_pool(day)


def save_ground_truth(world, params: BehaviourParams, directory: Path, exposure: PolicyTrace | None = None) -> None:
    """Write the latent arrays the response model (and, given, the logging policy) needs."""
    directory.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"user_id": world.users["user_id"], "language": world.user_language}).write_parquet(
        directory / "users.parquet"
    )
    pl.DataFrame(
        {
            "video_id": world.videos["video_id"],
            "topic": world.topic,
            "quality": world.quality,
            "duration": world.duration,
            "uploaded_us": world.uploaded_us,
            "removed_us": world.removed_us,
            "language": world.video_language,
            "creator": world.creator,
            "creator_fame": world.creator_fame,
            "prior_views": world.prior_views,
            "back_catalogue": world.upload_day < 0,
        }
    ).write_parquet(directory / "videos.parquet")
    np.save(directory / "interest.npy", world.interest)
    np.save(directory / "interest_prior.npy", world.interest_prior)
    if exposure is not None:
        np.savez_compressed(directory / "policy.npz", weights=exposure.weights, fresh_pool=exposure.fresh_pool,
                            noise=world.policy_noise)  # fmt: skip
    meta = {
        "topics": world.config.topics,
        "behaviour": params.to_dict(),
        "language_penalty": language_penalty_table().tolist(),
        "policy": {
            "personal_share": world.config.policy_personal_share,
            "fresh_share": world.config.policy_fresh_share,
            "noise_weight": world.config.policy_noise,
            "start_us": int(world.start_us),
        },
        "definitions": {
            "p_interact": "P(watch | impression at ts)",
            "p_complete": "P(watch and watch_seconds / duration_seconds >= 0.8 | impression at ts)",
        },
    }
    (directory / "params.json").write_text(json.dumps(meta, indent=2) + "\n")


def to_epoch_us(ts: TimeLike, n: int) -> np.ndarray:
    """Microseconds since the epoch as an (n,) int64 array; one instant is broadcast.

    Naive datetimes are taken as UTC.
    """
    if isinstance(ts, datetime):
        aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
        delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
        return np.full(n, delta // timedelta(microseconds=1), dtype=np.int64)
    if isinstance(ts, pl.Series):
        out = ts.dt.epoch("us").to_numpy().astype(np.int64)
    elif isinstance(ts, (np.datetime64, np.ndarray)):
        out = np.asarray(ts).astype("datetime64[us]").astype(np.int64)
    else:
        out = pl.Series(list(ts), dtype=pl.Datetime("us", "UTC")).dt.epoch("us").to_numpy().astype(np.int64)
    out = np.broadcast_to(out, (n,)) if out.ndim == 0 or out.size == 1 else out
    if out.shape != (n,):
        raise ValueError(f"ts must be one instant or {n} instants, got {out.shape[0]}")
    return np.ascontiguousarray(out)


class GroundTruth:
    """True response probabilities of a simulated platform, for any (user, video, time).

    Example:
        >>> gt = GroundTruth.load("runs/sim")                              # doctest: +SKIP
        >>> gt.p_complete(["u0001"], ["v0042"], datetime(2025, 6, 10, tzinfo=timezone.utc))  # doctest: +SKIP
        array([0.173...])
    """

    def __init__(self, users: pl.DataFrame, videos: pl.DataFrame, interest: np.ndarray, meta: dict,
                 interest_prior: np.ndarray | None = None, policy: PolicyTrace | None = None) -> None:
        self.user_ids = IdMap(users["user_id"])
        self.video_ids = IdMap(videos["video_id"])
        self.user_language = users["language"].to_numpy()
        self.topic = videos["topic"].to_numpy()
        self.quality = videos["quality"].to_numpy()
        self.duration = videos["duration"].to_numpy()
        self.uploaded_us = videos["uploaded_us"].to_numpy()
        self.removed_us = videos["removed_us"].to_numpy()
        self.video_language = videos["language"].to_numpy()
        extra = {"creator", "creator_fame", "prior_views", "back_catalogue"}
        self.has_creators = extra <= set(videos.columns)  # older simulations lack these
        if self.has_creators:
            self.creator = videos["creator"].to_numpy()
            self.creator_fame = videos["creator_fame"].to_numpy()
            self.prior_views = videos["prior_views"].to_numpy()
            self.back_catalogue = videos["back_catalogue"].to_numpy()
        self.interest = interest  # (users, topics) float32
        self.interest_prior = interest_prior  # (users, topics) Dirichlet parameters; None in older simulations
        self.policy = policy  # the logging policy's choices; None in older simulations
        self.n_topics = int(meta["topics"])
        self.params = BehaviourParams(**meta["behaviour"])
        self.language_penalty = np.asarray(meta["language_penalty"], dtype=np.float64)

    @classmethod
    def load(cls, sim_dir: str | Path) -> GroundTruth:
        """Read ``sim_dir/ground_truth`` written by :func:`vidrec.data.simulator.simulate`."""
        root = Path(sim_dir) / "ground_truth"
        needed = ["users.parquet", "videos.parquet", "interest.npy", "params.json"]
        missing = [name for name in needed if not (root / name).exists()]
        if missing:
            raise DataError(
                f"{root}: no ground truth ({', '.join(missing)} missing)",
                "ground truth exists only for simulated data; create it with `vidrec simulate`",
            )
        meta = json.loads((root / "params.json").read_text())
        prior, policy = root / "interest_prior.npy", None
        if (root / "policy.npz").exists() and "policy" in meta:
            with np.load(root / "policy.npz") as arrays:
                policy = PolicyTrace(arrays["weights"], arrays["fresh_pool"], arrays["noise"], **meta["policy"])
        return cls(pl.read_parquet(root / "users.parquet"), pl.read_parquet(root / "videos.parquet"),
                   np.load(root / "interest.npy"), meta, np.load(prior) if prior.exists() else None, policy)

    def _index(self, ids, idmap: IdMap, what: str) -> np.ndarray:
        idx = idmap.to_index(ids)
        if (idx < 0).any():
            unknown = pl.Series(ids, dtype=pl.String).filter(pl.Series(idx < 0)).head(5).to_list()
            raise KeyError(f"unknown {what} ids (first ones): {unknown}")
        return idx

    def _probabilities(self, users: np.ndarray, videos: np.ndarray, ts_us: np.ndarray):
        """(P(watch), P(full | watch)) for aligned index arrays; broadcasts 2-D too."""
        affinity = log_affinity(self.interest[users, self.topic[videos]], self.n_topics)
        penalty = self.language_penalty[self.user_language[users], self.video_language[videos]]
        return response_probabilities(
            self.params, affinity, penalty, self.quality[videos], self.duration[videos],
            ts_us - self.uploaded_us[videos],
        )

    def p_interact(self, user_ids, video_ids, ts: TimeLike) -> np.ndarray:
        """P(the user watches the video | it is shown to them at ``ts``), per pair."""
        users, videos = self._index(user_ids, self.user_ids, "user"), self._index(video_ids, self.video_ids, "video")
        if users.size != videos.size:
            raise ValueError(f"user_ids and video_ids differ in length ({users.size} vs {videos.size})")
        return self._probabilities(users, videos, to_epoch_us(ts, users.size))[0]

    def p_complete(self, user_ids, video_ids, ts: TimeLike) -> np.ndarray:
        """P(the user watches >= 80% of the video | it is shown to them at ``ts``), per pair."""
        users, videos = self._index(user_ids, self.user_ids, "user"), self._index(video_ids, self.video_ids, "video")
        if users.size != videos.size:
            raise ValueError(f"user_ids and video_ids differ in length ({users.size} vs {videos.size})")
        watch, full = self._probabilities(users, videos, to_epoch_us(ts, users.size))
        return watch * full

    def available(self, ts_us: int) -> np.ndarray:
        """Mask of videos that can be shown at ``ts_us``: uploaded, not yet removed."""
        return (self.uploaded_us <= ts_us) & (self.removed_us > ts_us)

    def best_videos(self, user_ids, ts: TimeLike, k: int = 10,
                    exclude: dict[str, set[str]] | None = None) -> pl.DataFrame:
        """The oracle: each user's ``k`` available videos of highest ``p_complete`` at ``ts``.

        Scores the whole corpus, chunked by users. ``exclude`` maps a user id to video ids
        that must not be returned (e.g. already watched). Returns ``user_id, rank (1..k),
        video_id, p_complete``; fewer than ``k`` rows for a user if fewer videos qualify.
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        users = self._index(user_ids, self.user_ids, "user")
        ts_us = to_epoch_us(ts, users.size)
        ex_pos, ex_video = self._exclusions(user_ids, exclude)
        n_videos = self.topic.size
        kk = min(k, n_videos)
        chunk = max(1, CELLS_PER_CHUNK // n_videos)
        rows_user, rows_rank, rows_video, rows_p = [], [], [], []
        all_videos = np.arange(n_videos)
        for lo in range(0, users.size, chunk):  # a loop over user chunks, not users
            hi = min(lo + chunk, users.size)
            u, t = users[lo:hi, None], ts_us[lo:hi, None]  # (chunk, 1)
            watch, full = self._probabilities(u, all_videos[None, :], t)
            p = watch * full  # (chunk, videos)
            p[(self.uploaded_us[None, :] > t) | (self.removed_us[None, :] <= t)] = -np.inf
            a, b = np.searchsorted(ex_pos, [lo, hi])
            p[ex_pos[a:b] - lo, ex_video[a:b]] = -np.inf
            top = np.argpartition(-p, kk - 1, axis=1)[:, :kk] if kk < n_videos else np.tile(all_videos, (hi - lo, 1))
            val = np.take_along_axis(p, top, axis=1)
            order = np.lexsort((top, -val), axis=-1)
            top, val = np.take_along_axis(top, order, axis=1), np.take_along_axis(val, order, axis=1)
            rows_user.append(np.repeat(np.arange(lo, hi), kk))
            rows_rank.append(np.tile(np.arange(1, kk + 1, dtype=np.int32), hi - lo))
            rows_video.append(top.ravel())
            rows_p.append(val.ravel())
        if not rows_user:
            return pl.DataFrame(schema={"user_id": pl.String, "rank": pl.Int32, "video_id": pl.String,
                                        "p_complete": pl.Float64})
        pos, video, p = np.concatenate(rows_user), np.concatenate(rows_video), np.concatenate(rows_p)
        keep = np.isfinite(p)
        return pl.DataFrame(
            {
                "user_id": pl.Series(user_ids, dtype=pl.String).gather(pos[keep]),
                "rank": np.concatenate(rows_rank)[keep],
                "video_id": self.video_ids.to_ids(video[keep]),
                "p_complete": p[keep],
            }
        )

    def _exclusions(self, user_ids, exclude: dict[str, set[str]] | None) -> tuple[np.ndarray, np.ndarray]:
        """(query position, video index) pairs to exclude, sorted by position."""
        if not exclude:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pairs = pl.DataFrame(
            {"user_id": list(exclude.keys()), "video_id": [list(v) for v in exclude.values()]},
            schema={"user_id": pl.String, "video_id": pl.List(pl.String)},
        ).explode("video_id").drop_nulls()
        pairs = pairs.with_columns(video=pl.Series(self.video_ids.to_index(pairs["video_id"]))).filter(
            pl.col("video") >= 0
        )
        query = pl.DataFrame({"user_id": pl.Series(user_ids, dtype=pl.String)}).with_row_index("pos")
        joined = query.join(pairs, on="user_id", how="inner").sort("pos", "video")
        return joined["pos"].to_numpy().astype(np.int64), joined["video"].to_numpy().astype(np.int64)
