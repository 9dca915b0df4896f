"""BC and SQIL losses against values computed by hand."""

import math

import pytest
import torch

from visual_iq.algo.losses import bc_loss, sqil_loss

Q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
ACTIONS = torch.tensor([0, 1, 1])
IS_EXPERT = torch.tensor([True, True, False])


def test_bc_loss_is_cross_entropy_of_expert_rows_only():
    alpha = 0.5
    loss, terms = bc_loss(Q, ACTIONS, IS_EXPERT, alpha=alpha)

    def nll(row, action):
        logits = [x / alpha for x in row]
        return -(logits[action] - math.log(sum(math.exp(x) for x in logits)))

    expected = (nll([1.0, 0.0], 0) + nll([0.0, 2.0], 1)) / 2
    assert loss.item() == pytest.approx(expected)
    assert terms["bc_loss"].item() == pytest.approx(expected)


def test_sqil_rewards_expert_one_policy_zero_and_stops_at_termination():
    next_v = torch.tensor([1.0, 2.0, 3.0])
    terminated = torch.tensor([False, True, False])
    loss, terms = sqil_loss(Q, ACTIONS, next_v, terminated, IS_EXPERT, gamma=0.9)
    targets = [1.0 + 0.9 * 1.0, 1.0 + 0.0, 0.0 + 0.9 * 3.0]
    taken = [1.0, 2.0, 1.0]
    expected = sum((t - y) ** 2 for t, y in zip(taken, targets)) / 3
    assert loss.item() == pytest.approx(expected)
    assert terms["q_taken_expert"].item() == pytest.approx(1.5)
    assert terms["q_taken_policy"].item() == pytest.approx(1.0)
