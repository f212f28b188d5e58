"""The simulated platform's fixed vocabulary: categories, words, countries, languages.

Titles and tags are built from these words, so a text model has real signal to find.
"""

from __future__ import annotations

import numpy as np

CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    # (name, median duration in seconds, words typical of the category)
    ("music", 170.0, ("song", "cover", "remix", "live", "acoustic", "beat", "album", "guitar", "piano", "lyrics")),
    ("comedy", 45.0, ("prank", "sketch", "funny", "standup", "parody", "fails", "joke", "reaction", "roast", "skit")),
    ("education", 720.0, (
        "lecture", "explained", "math", "physics", "history", "lesson", "tutorial", "theory", "exam", "science",
    )),
    ("gaming", 900.0, (
        "speedrun", "gameplay", "boss", "walkthrough", "build", "ranked", "mod", "stream", "level", "glitch",
    )),
    ("news", 240.0, (
        "breaking", "report", "election", "economy", "update", "interview", "weather", "policy", "market", "debate",
    )),
    ("sports", 150.0, (
        "goal", "highlights", "match", "dunk", "training", "race", "final", "transfer", "league", "skills",
    )),
    ("cooking", 420.0, (
        "recipe", "pasta", "baking", "curry", "grill", "vegan", "dessert", "noodles", "bread", "spicy",
    )),
    ("travel", 540.0, (
        "vlog", "island", "hiking", "city", "roadtrip", "hotel", "beach", "mountains", "backpacking", "guide",
    )),
    ("tech", 600.0, (
        "review", "unboxing", "laptop", "phone", "coding", "camera", "setup", "gadget", "linux", "benchmark",
    )),
    ("pets", 35.0, ("puppy", "kitten", "cat", "dog", "parrot", "cute", "rescue", "zoomies", "hamster", "bunny")),
    ("beauty", 300.0, (
        "makeup", "skincare", "haul", "hair", "nails", "routine", "glow", "lipstick", "fashion", "outfit",
    )),
    ("fitness", 480.0, ("workout", "yoga", "abs", "running", "stretch", "cardio", "gym", "squat", "hiit", "pilates")),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c[0] for c in CATEGORIES)
CATEGORY_MEDIAN_SECONDS = np.array([c[1] for c in CATEGORIES])

GENERIC_WORDS: tuple[str, ...] = (
    "best", "new", "my", "first", "ultimate", "top", "easy", "daily", "how", "why", "day", "week",
    "challenge", "tips", "guide", "moments", "full", "short", "today", "ever",
)

SYLLABLES: tuple[str, ...] = (
    "ka", "ri", "zo", "mel", "tan", "vu", "shi", "lor", "pe", "dax", "nu", "bri", "so", "qua", "fen", "ty",
)

LANGUAGES: tuple[str, ...] = ("en", "hi", "pt", "de", "es", "ja", "id", "fr")
VIDEO_LANGUAGE_SHARES = np.array([0.45, 0.12, 0.1, 0.05, 0.12, 0.05, 0.07, 0.04])
"""Share of creators (and so videos) per language: English over-represented."""

COUNTRIES: tuple[tuple[str, str, float], ...] = (
    # (ISO code, main language, share of users)
    ("US", "en", 0.25), ("IN", "hi", 0.18), ("BR", "pt", 0.12), ("GB", "en", 0.06), ("DE", "de", 0.06),
    ("MX", "es", 0.08), ("JP", "ja", 0.06), ("ID", "id", 0.08), ("FR", "fr", 0.05), ("ES", "es", 0.06),
)

AGE_BUCKETS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")
AGE_SHARES = np.array([0.12, 0.28, 0.27, 0.17, 0.10, 0.06])

AGE_TILT = np.array(
    # log-multipliers on interest per (age bucket, category), order as CATEGORIES:
    # music comedy educ gaming news sports cooking travel tech pets beauty fitness
    [
        [0.8, 0.8, 0.2, 1.0, -1.0, 0.2, -0.6, -0.6, 0.0, 0.4, 0.5, -0.2],
        [0.6, 0.6, 0.3, 0.7, -0.6, 0.3, -0.3, 0.0, 0.3, 0.2, 0.5, 0.3],
        [0.2, 0.3, 0.2, 0.2, 0.0, 0.3, 0.2, 0.4, 0.4, 0.1, 0.2, 0.5],
        [0.0, 0.0, 0.2, -0.2, 0.4, 0.3, 0.5, 0.4, 0.3, 0.2, 0.0, 0.3],
        [-0.2, -0.2, 0.2, -0.6, 0.8, 0.2, 0.7, 0.5, 0.1, 0.3, -0.2, 0.0],
        [-0.4, -0.3, 0.1, -1.0, 1.0, 0.1, 0.8, 0.6, -0.2, 0.4, -0.4, -0.3],
    ]
)

LANGUAGE_PENALTY_EN_FOREIGN = -0.5
"""Watch-logit penalty for an English video shown to a non-English speaker."""
LANGUAGE_PENALTY_OTHER = -1.5
"""Watch-logit penalty for any other language mismatch."""


def language_penalty_table() -> np.ndarray:
    """(user language, video language) -> additive watch-logit penalty."""
    n = len(LANGUAGES)
    table = np.full((n, n), LANGUAGE_PENALTY_OTHER)
    table[:, LANGUAGES.index("en")] = LANGUAGE_PENALTY_EN_FOREIGN
    np.fill_diagonal(table, 0.0)
    return table
