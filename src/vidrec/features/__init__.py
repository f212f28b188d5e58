"""Features shared by training and serving: the same code builds both, point in time."""

from vidrec.features.user_state import build_user_state, completed_pairs
from vidrec.features.video_stats import video_stats

__all__ = ["build_user_state", "completed_pairs", "video_stats"]
