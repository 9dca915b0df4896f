"""IQ loss against values computed by hand on tiny tensors."""

import math

import pytest
import torch

from visual_iq.algo.losses import iq_loss, soft_value

ALPHA, GAMMA = 0.5, 0.9
# Two expert rows and one policy row, two actions.
Q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
ACTIONS = torch.tensor([0, 1, 1])
NEXT_V = torch.tensor([1.0, 2.0, 3.0])
TERMINATED = torch.tensor([False, True, False])
IS_EXPERT = torch.tensor([True, True, False])


def v(row):
    return ALPHA * math.log(sum(math.exp(x / ALPHA) for x in row))


# implicit rewards r = Q(s,a) - γ(1-d)V(s'): the second row is terminal, so no bootstrap
R = [1.0 - 0.9 * 1.0, 2.0 - 0.0, 1.0 - 0.9 * 3.0]
V = [v([1.0, 0.0]), v([0.0, 2.0]), v([1.0, 1.0])]
Y = [0.9, 0.0, 2.7]


def test_soft_value():
    assert soft_value(Q, ALPHA).tolist() == pytest.approx(V)
    # α -> 0 recovers max Q
    assert soft_value(Q, 1e-4).tolist() == pytest.approx([1.0, 2.0, 1.0], abs=1e-3)


def test_value_expert_variant():
    loss, terms = iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA,
                          variant="value_expert", chi2_alpha=0.5)
    reward_loss = -(R[0] + R[1]) / 2
    value_loss = ((V[0] - Y[0]) + (V[1] - Y[1])) / 2
    chi2 = (R[0] ** 2 + R[1] ** 2) / 2 / (4 * 0.5)
    assert terms["reward_loss"].item() == pytest.approx(reward_loss)
    assert terms["value_loss"].item() == pytest.approx(value_loss)
    assert terms["chi2_loss"].item() == pytest.approx(chi2)
    assert loss.item() == pytest.approx(reward_loss + value_loss + chi2)
    assert terms["reward_policy"].item() == pytest.approx(R[2])


def test_value_variant_uses_all_states_and_regularises_all():
    loss, terms = iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA,
                          variant="value", chi2_alpha=0.25)
    value_loss = sum(V[i] - Y[i] for i in range(3)) / 3
    chi2 = sum(r**2 for r in R) / 3 / (4 * 0.25)
    assert terms["value_loss"].item() == pytest.approx(value_loss)
    assert loss.item() == pytest.approx(-(R[0] + R[1]) / 2 + value_loss + chi2)


def test_chi2_rows_choose_the_regularised_rows_whatever_the_variant():
    """``chi2_rows: all`` with ``value_expert`` is the official ``method.regularize``: the value term
    stays on expert states, the χ² term covers the policy rows too; ``expert`` does the reverse for ``value``."""
    expert_value = ((V[0] - Y[0]) + (V[1] - Y[1])) / 2
    loss, terms = iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA,
                          variant="value_expert", chi2_alpha=0.25, chi2_rows="all")
    assert terms["value_loss"].item() == pytest.approx(expert_value)
    assert terms["chi2_loss"].item() == pytest.approx(sum(r**2 for r in R) / 3 / (4 * 0.25))
    assert loss.item() == pytest.approx(-(R[0] + R[1]) / 2 + expert_value + terms["chi2_loss"].item())
    _, terms = iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA,
                       variant="value", chi2_alpha=0.25, chi2_rows="expert")
    assert terms["chi2_loss"].item() == pytest.approx((R[0] ** 2 + R[1] ** 2) / 2 / (4 * 0.25))
    with pytest.raises(ValueError, match="chi2_rows"):
        iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA, chi2_rows="policy")


def test_v0_variant():
    initial_v = torch.tensor([2.0, 4.0])
    loss, terms = iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA,
                          variant="v0", chi2_alpha=None, initial_v=initial_v)
    assert terms["value_loss"].item() == pytest.approx((1 - GAMMA) * 3.0)
    assert "chi2_loss" not in terms
    assert loss.item() == pytest.approx(-(R[0] + R[1]) / 2 + (1 - GAMMA) * 3.0)
    with pytest.raises(ValueError, match="needs initial_v"):
        iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA, variant="v0")


def test_done_handling_only_changes_bootstrap():
    not_terminal = torch.zeros(3, dtype=torch.bool)
    _, terms = iq_loss(Q, ACTIONS, NEXT_V, not_terminal, IS_EXPERT, alpha=ALPHA, gamma=GAMMA, chi2_alpha=None)
    r1 = 2.0 - 0.9 * 2.0
    assert terms["reward_expert"].item() == pytest.approx((R[0] + r1) / 2)


def test_gradient_raises_expert_action_value():
    q = Q.clone().requires_grad_(True)
    loss, _ = iq_loss(q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA, chi2_alpha=None)
    loss.backward()
    # descending the loss raises Q of the expert action relative to the other action
    assert q.grad[0, 0] < q.grad[0, 1]
    assert q.grad[1, 1] < q.grad[1, 0]
    assert torch.all(q.grad[2] == 0)  # value_expert ignores policy rows


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown IQ variant"):
        iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=ALPHA, gamma=GAMMA, variant="nope")



@pytest.mark.parametrize("variant", ["value_expert", "value"])
def test_temperature_and_chi2_weight_act_on_the_policy_only_through_their_ratio(variant):
    """In logit units Q̃ = Q/α: L(Q; α, chi2_alpha) = α·L(Q̃; 1, chi2_alpha/α). So the policy the loss
    favours depends on α/chi2_alpha alone; α = 1e-3 with chi2_alpha = 0.5 leaves the χ² term
    1,000x weaker, in logit units, than α = 1 does (why `chi2_alpha` is swept with α online)."""
    alpha, chi2_alpha = 1e-3, 0.5
    q, next_v = Q * alpha, NEXT_V * alpha
    loss, _ = iq_loss(q, ACTIONS, next_v, TERMINATED, IS_EXPERT, alpha=alpha, gamma=GAMMA, variant=variant,
                      chi2_alpha=chi2_alpha)
    logit_loss, _ = iq_loss(Q, ACTIONS, NEXT_V, TERMINATED, IS_EXPERT, alpha=1.0, gamma=GAMMA, variant=variant,
                            chi2_alpha=chi2_alpha / alpha)
    assert loss.item() == pytest.approx(alpha * logit_loss.item(), rel=1e-5)
