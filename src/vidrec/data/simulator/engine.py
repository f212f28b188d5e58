"""The day loop: who visits, what they are shown, what they do, written one day at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vidrec.data.simulator.behaviour import (
    US_PER_DAY,
    BehaviourParams,
    completion_candidates,
    like_dislike_probabilities,
    log_affinity,
    response_probabilities,
)
from vidrec.data.simulator.config import SimulatorConfig
from vidrec.data.simulator.groundtruth import PolicyTrace, save_ground_truth
from vidrec.data.simulator.policy import LoggingPolicy
from vidrec.data.simulator.vocab import language_penalty_table
from vidrec.data.simulator.world import World, build_world
from vidrec.data.simulator.writer import KIND_CODE, EventsWriter
from vidrec.progress import bar

US = 1_000_000
DAY_SECONDS = 86_400.0


@dataclass
class DayEvents:
    """One day's events as dense indices, sorted by time."""

    user: np.ndarray
    video: np.ndarray
    ts_us: np.ndarray
    kind: np.ndarray  # int8 codes of vidrec.data.schema.EVENT_KINDS
    watch_seconds: np.ndarray  # NaN for non-watch rows
    watched_videos: np.ndarray  # video index of each watch (for the policy's view counts)


def _sessions(counts: np.ndarray, max_len: int, rng: np.random.Generator):
    """Split each active user's impressions into sessions spread over the day.

    Returns per-impression (user, position in session, session index) and per-session
    start second.
    """
    users = np.flatnonzero(counts)
    n = counts[users]
    n_sessions = -(-n // max_len)  # ceil
    owner = np.repeat(users, n_sessions)
    first_session = np.cumsum(n_sessions) - n_sessions
    j = np.arange(owner.size) - np.repeat(first_session, n_sessions)  # session number in the day
    size = np.repeat(n // n_sessions, n_sessions) + (j < np.repeat(n % n_sessions, n_sessions))
    window = DAY_SECONDS / np.repeat(n_sessions, n_sessions)
    start = (j + 0.5 * rng.random(owner.size)) * window  # in the first half of its window
    session = np.repeat(np.arange(owner.size), size)
    position = np.arange(session.size) - np.repeat(np.cumsum(size) - size, size)
    return owner[session], position, session, start


def simulate_day(world: World, policy: LoggingPolicy, params: BehaviourParams, views: np.ndarray,
                 day: int, rng: np.random.Generator) -> DayEvents:
    """Simulate one day; outcomes are drawn from exactly the ground-truth probabilities."""
    cfg = world.config
    counts = rng.poisson(cfg.impressions_per_user_day * world.activity)
    user, position, session, start = _sessions(counts, cfg.max_session_impressions, rng)
    video = policy.sample(day, views, user, rng)
    n = user.size
    if n == 0 or video[0] < 0:  # nobody visits, or nothing can be shown
        empty = np.zeros(0, dtype=np.int64)
        return DayEvents(empty, empty, empty, empty.astype(np.int8), empty.astype(np.float64), empty)
    duration = world.duration[video]
    partial, whole = completion_candidates(params, duration, rng)
    gap = 2.0 + rng.exponential(8.0, size=n)  # seconds of scrolling before the next item
    u_watch, u_full, u_like, u_dislike = (rng.random(n) for _ in range(4))
    affinity = log_affinity(world.interest[user, world.topic[video]], cfg.topics)
    penalty = language_penalty_table()[world.user_language[user], world.video_language[video]]
    day_us = world.start_us + day * US_PER_DAY

    offset = np.empty(n)  # seconds since midnight of each impression
    completion = np.zeros(n)
    watched = np.zeros(n, dtype=bool)
    for p in range(cfg.max_session_impressions):  # a loop over positions in a session (<= ~12)
        idx = np.flatnonzero(position == p)
        if idx.size == 0:
            break
        if p == 0:
            offset[idx] = start[session[idx]]
        else:
            prev = idx - 1
            spent = np.where(watched[prev], 3.0 + completion[prev] * duration[prev], 0.0)
            offset[idx] = offset[prev] + gap[prev] + spent
        ts_us = day_us + (offset[idx] * US).astype(np.int64)
        p_watch, p_full = response_probabilities(
            params, affinity[idx], penalty[idx], world.quality[video[idx]], duration[idx],
            ts_us - world.uploaded_us[video[idx]],
        )
        watched[idx] = u_watch[idx] < p_watch
        completion[idx] = np.where(u_full[idx] < p_full, whole[idx], partial[idx]) * watched[idx]
    keep = offset < DAY_SECONDS  # a session running past midnight is cut there
    return _rows(world, params, user, video, day_us, offset, watched, completion, affinity,
                 u_like, u_dislike, keep)


def _rows(world, params, user, video, day_us, offset, watched, completion, affinity, u_like, u_dislike, keep):
    """Turn per-impression outcomes into event rows, sorted by time."""
    imp_us = day_us + (offset * US).astype(np.int64)
    seconds = completion * world.duration[video]
    p_like, p_dislike = like_dislike_probabilities(params, affinity, world.quality[video], completion)
    liked = keep & watched & (u_like < p_like)
    disliked = keep & watched & ~liked & (u_dislike < p_dislike)
    watch = keep & watched
    end_us = imp_us + 2 * US + (seconds * US).astype(np.int64)  # after the watch ends
    parts = [
        (keep, imp_us, KIND_CODE["impression"], np.nan),
        (watch, imp_us + US, KIND_CODE["watch"], seconds),
        (liked, end_us, KIND_CODE["like"], np.nan),
        (disliked, end_us, KIND_CODE["dislike"], np.nan),
    ]
    u = np.concatenate([user[m] for m, *_ in parts])
    v = np.concatenate([video[m] for m, *_ in parts])
    ts = np.concatenate([t[m] for m, t, *_ in parts])
    kind = np.concatenate([np.full(int(m.sum()), k, dtype=np.int8) for m, _, k, _ in parts])
    ws = np.concatenate([np.broadcast_to(s, m.shape)[m] for m, _, _, s in parts]).astype(np.float64)
    order = np.argsort(ts, kind="stable")
    return DayEvents(u[order], v[order], ts[order], kind[order], ws[order], video[watch])


def simulate(config: SimulatorConfig, out_dir: str | Path) -> dict:
    """Simulate the platform described by ``config`` and write it to ``out_dir``.

    Writes ``events.parquet``, ``videos.parquet``, ``users.parquet`` (canonical schema),
    ``ground_truth/`` (see :class:`GroundTruth`) and ``simulation.json`` (resolved config
    and a summary), and returns what ``simulation.json`` holds. The same config always
    gives byte-identical Parquet files.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    world = build_world(config)
    params = BehaviourParams()
    policy = LoggingPolicy(world)
    views = np.zeros(config.videos)
    exposure = PolicyTrace.empty(config.days, config.videos)
    kinds = np.zeros(len(KIND_CODE), dtype=np.int64)
    first_us, last_us = None, None
    with EventsWriter(root / "events.parquet", world.users["user_id"], world.videos["video_id"]) as writer:
        for day in bar(range(config.days), config.days, "simulating", unit="day"):  # one numpy pass per day
            exposure.record(day, policy, views)
            events = simulate_day(world, policy, params, views, day, np.random.default_rng([config.seed, 100, day]))
            writer.write(events.user, events.video, events.ts_us, events.kind, events.watch_seconds)
            views += np.bincount(events.watched_videos, minlength=config.videos)
            kinds += np.bincount(events.kind, minlength=kinds.size)
            if events.ts_us.size:
                first_us = events.ts_us[0] if first_us is None else first_us
                last_us = events.ts_us[-1]
    world.videos.write_parquet(root / "videos.parquet", compression="zstd")
    world.users.write_parquet(root / "users.parquet", compression="zstd")
    save_ground_truth(world, params, root / "ground_truth", exposure)
    summary = _summary(world, kinds, first_us, last_us)
    result = {"config": config.to_dict(), "summary": summary}
    (root / "simulation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _summary(world: World, kinds: np.ndarray, first_us, last_us) -> dict:
    def iso(us):
        return None if us is None else datetime.fromtimestamp(int(us) / US, tz=UTC).isoformat()

    by_kind = {k: int(kinds[c]) for k, c in KIND_CODE.items()}
    return {
        "events": int(kinds.sum()),
        "events_by_kind": by_kind,
        "users": world.config.users,
        "videos": world.config.videos,
        "videos_before_day0": int((world.upload_day < 0).sum()),
        "videos_removed": int((~world.videos["available"]).sum()),
        "first_event": iso(first_us),
        "last_event": iso(last_us),
        "watch_rate": by_kind["watch"] / max(by_kind["impression"], 1),
    }
