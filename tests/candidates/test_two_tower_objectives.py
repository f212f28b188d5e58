import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.candidates.two_tower.objectives import (
    MASKED,
    CountFrequency,
    StreamingFrequency,
    binary_loss,
    in_batch_mask,
    sampled_softmax_loss,
)

torch.set_num_threads(1)


def test_sampled_softmax_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.5, 1.5, 3.0]])
    log_q = torch.tensor([0.0, math.log(2.0), math.log(4.0)])
    mask = torch.tensor([[False, False, True], [False, False, False]])
    got = sampled_softmax_loss(logits, log_q, mask, torch.tensor([0, 1]))
    # row 0: candidates 0 and 1 only -> logits 2, 1 - log 2; row 1: 0.5, 1.5 - log 2, 3 - log 4
    row0 = -(2.0 - math.log(math.exp(2.0) + math.exp(1.0 - math.log(2.0))))
    c = [0.5, 1.5 - math.log(2.0), 3.0 - math.log(4.0)]
    row1 = -(c[1] - math.log(sum(math.exp(x) for x in c)))
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=4, max_size=4),
    st.floats(-3, 3),
    st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_loss_ignores_a_constant_log_q_and_masked_columns(row, shift, masked):
    logits = torch.tensor([row])
    mask = torch.tensor([[False] + masked[1:]])
    base = sampled_softmax_loss(logits, torch.zeros(4), mask, torch.tensor([0]))
    shifted = sampled_softmax_loss(logits, torch.full((4,), shift), mask, torch.tensor([0]))
    moved = logits.masked_fill(mask, 50.0)  # masked columns' scores must not matter
    assert shifted.item() == pytest.approx(base.item(), abs=1e-5)
    assert sampled_softmax_loss(moved, torch.zeros(4), mask, torch.tensor([0])).item() == pytest.approx(
        base.item(), abs=1e-5
    )


def test_in_batch_mask_drops_same_video_and_same_user_but_never_the_diagonal():
    videos = torch.tensor([1, 2, 1, 3])
    users = torch.tensor([0, 1, 2, 0])
    expected = torch.tensor(
        [
            [False, False, True, True],  # row 0: video 1 again at col 2; user 0 again at col 3
            [False, False, False, False],
            [True, False, False, False],
            [True, False, False, False],
        ]
    )
    assert torch.equal(in_batch_mask(videos, users), expected)


def test_binary_loss_matches_hand_computation():
    logits = torch.tensor([[1.0, -1.0, 2.0]])
    weights = torch.tensor([[1.0, 1.0, 0.0]])
    want = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert binary_loss(logits, weights).item() == pytest.approx(want, rel=1e-6)


def test_streaming_frequency_recovers_expected_counts_per_batch():
    freq = StreamingFrequency(buckets=64, ema=0.1)
    for step in range(400):
        batch = [1, 5, 5, 5]  # video 1 once per step, video 5 three times per step
        if step % 4 == 0:
            batch.append(9)  # video 9 once every four steps
        freq.update(torch.tensor(batch))
    got = freq.expected_count(torch.tensor([1, 5, 9, 7]))
    assert got[:3].tolist() == pytest.approx([1.0, 3.0, 0.25], rel=0.05)
    assert got[3].item() == pytest.approx(1 / 400)  # never seen: once in all the steps so far
    assert freq.expected_count(torch.tensor([9 + 64])).item() == pytest.approx(got[2].item())  # hashed


def test_streaming_frequency_follows_a_change_in_popularity():
    freq = StreamingFrequency(buckets=16, ema=0.2)
    for step in range(200):
        freq.update(torch.tensor([3] if step < 100 or step % 5 == 0 else [4]))
    assert freq.expected_count(torch.tensor([3])).item() == pytest.approx(0.2, rel=0.1)


def test_count_frequency_is_exact():
    freq = CountFrequency(np.array([1, 1, 1, 2]), n_videos=3, batch_size=2)
    assert freq.expected_count(torch.tensor([1, 2, 3])).tolist() == pytest.approx([1.5, 0.5, 0.5])


def _learned_scores(sign: float, n: int = 30, batch: int = 48, steps: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Free per-video scores trained by in-batch sampled softmax on a Zipf positive stream.

    Every row is a different user with the same true preference p; the full-softmax answer
    is score_j = log p_j + const. ``sign`` multiplies the streaming log-Q correction.
    """
    g = torch.Generator().manual_seed(0)
    p = 1.0 / torch.arange(1, n + 1).float() ** 1.2
    p /= p.sum()
    scores = torch.zeros(n, requires_grad=True)
    opt = torch.optim.Adam([scores], lr=0.1)
    freq = StreamingFrequency(buckets=256, ema=0.05)
    users = torch.arange(batch)
    for _ in range(steps):
        v = torch.multinomial(p, batch, replacement=True, generator=g)  # (B,) popular-heavy
        freq.update(v)
        log_q = sign * torch.log(freq.expected_count(v))
        logits = scores[v].expand(batch, -1)  # (B, B): the score does not depend on the user
        loss = sampled_softmax_loss(logits, log_q, in_batch_mask(v, users), torch.arange(batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.log(p).numpy(), scores.detach().numpy()


def test_log_q_correction_has_the_right_sign():
    """Uncorrected in-batch softmax flattens the scores (popular videos are over-represented as
    negatives); the correction restores score ∝ log p; the flipped sign inverts the ranking."""
    log_p, right = _learned_scores(+1.0)
    _, none = _learned_scores(0.0)
    _, wrong = _learned_scores(-1.0)
    slope = lambda y: np.polyfit(log_p, y, 1)[0]  # noqa: E731
    assert 0.8 <= slope(right) <= 1.2
    assert abs(slope(none)) < 0.25
    assert slope(wrong) < -0.5
    # the most popular video is under-scored without the correction, relative to the rarest
    assert right[0] - right[-1] > none[0] - none[-1] + 2.0
    assert np.abs(right - right.mean() - (log_p - log_p.mean())).mean() < np.abs(
        none - none.mean() - (log_p - log_p.mean())
    ).mean()


def test_masked_logit_is_finite_so_fully_masked_rows_stay_finite():
    logits = torch.zeros(1, 2)
    loss = sampled_softmax_loss(logits, torch.zeros(2), torch.tensor([[False, True]]), torch.tensor([0]))
    assert MASKED < -1e6 and torch.isfinite(loss)
