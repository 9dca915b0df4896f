"""The inverse soft-Q (IQ-Learn) objective, Garg et al. 2021, eq. (10)-(12), as one pure function.

With soft value V(s) = α·logsumexp(Q(s,·)/α) and implicit reward r(s,a) = Q(s,a) − γ(1−d)V(s'),
the loss minimised over Q is

    L = −E_expert[r(s,a)]                                  (make expert actions rewarding)
        + value term                                       (keep every other action cheap)
        + 1/(4·chi2_alpha) · E_χ²[r(s,a)²]                (χ² regulariser of the reward)

with value term, by variant:
    value_expert:  E_expert[V(s) − γ(1−d)V(s')]       offline, expert states only
    value:         E_expert∪policy[V(s) − γ(1−d)V(s')] online, expert and policy states
    v0:            (1−γ)·E_ρ0[V(s0)]                    offline, initial states
and E_χ² over expert samples (offline variants) or expert and policy samples (``value``),
as in the official implementation. ``d`` is `terminated` only: truncated episodes bootstrap.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Variant = Literal["value_expert", "value", "v0"]
VARIANTS: tuple[str, ...] = ("value_expert", "value", "v0")


def soft_value(q: Tensor, alpha: float) -> Tensor:
    """V(s) = α·logsumexp(Q(s,·)/α) over the last (action) dimension."""
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def iq_loss(
    q: Tensor,
    actions: Tensor,
    next_v: Tensor,
    terminated: Tensor,
    is_expert: Tensor,
    *,
    alpha: float,
    gamma: float,
    variant: Variant = "value_expert",
    chi2_alpha: float | None = 0.5,
    initial_v: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """IQ-Learn loss and its terms.

    Args:
        q: (B, A) online Q(s,·) of the batch states.
        actions: (B,) actions taken.
        next_v: (B,) V(s') of the next states (usually from the target network, no grad).
        terminated: (B,) bool/float, 1 where s' is terminal (truncation is not termination).
        is_expert: (B,) bool, which rows come from the demonstrations (at least one must).
        alpha: entropy temperature of the soft-Q policy.
        gamma: discount.
        variant: which states the value term uses (see module docstring).
        chi2_alpha: weight 1/(4·chi2_alpha) of the χ² term; None disables it.
        initial_v: (N,) V(s0) of initial states; required by ``v0``.

    Returns:
        (loss, metrics) where metrics hold detached terms: ``reward_loss``, ``value_loss``,
        ``chi2_loss``, ``reward_expert``, ``reward_policy`` (if policy rows), ``v_expert``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown IQ variant {variant!r}; choose one of {VARIANTS}")
    is_expert = is_expert.bool()
    not_done = 1.0 - terminated.float()
    q_taken = q.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    v = soft_value(q, alpha)
    discounted_next_v = gamma * not_done * next_v
    reward = q_taken - discounted_next_v

    reward_loss = -reward[is_expert].mean()
    if variant == "value_expert":
        value_loss = (v - discounted_next_v)[is_expert].mean()
    elif variant == "value":
        value_loss = (v - discounted_next_v).mean()
    else:
        if initial_v is None:
            raise ValueError("the v0 variant needs initial_v, the values of initial states")
        value_loss = (1.0 - gamma) * initial_v.mean()
    loss = reward_loss + value_loss

    metrics = {
        "reward_loss": reward_loss.detach(),
        "value_loss": value_loss.detach(),
        "reward_expert": reward[is_expert].detach().mean(),
        "v_expert": v[is_expert].detach().mean(),
    }
    if (~is_expert).any():
        metrics["reward_policy"] = reward[~is_expert].detach().mean()
    if chi2_alpha is not None:
        regularised = reward if variant == "value" else reward[is_expert]
        chi2_loss = (regularised**2).mean() / (4.0 * chi2_alpha)
        loss = loss + chi2_loss
        metrics["chi2_loss"] = chi2_loss.detach()
    return loss, metrics
