"""The objectives on soft-Q values, as pure tensor functions: IQ-Learn and the two baselines.

With soft value V(s) = α·logsumexp(Q(s,·)/α), every method here reads the same implicit reward

    r(s,a) = Q(s,a) − γ(1−d)·V(s')                      (`implicit_reward`)

where ``d`` is `terminated` only: truncated episodes bootstrap.

**IQ-Learn** (Garg et al. 2021, eq. (10)-(12)) minimises over Q

    L = −E_expert[r(s,a)]                                  (make expert actions rewarding)
        + value term                                       (keep every other action cheap)
        + 1/(4·chi2_alpha) · E_χ²[r(s,a)²]                (χ² regulariser of the reward)

with value term, by variant:
    value_expert:  E_expert[V(s) − γ(1−d)V(s')]       offline, expert states only
    value:         E_expert∪policy[V(s) − γ(1−d)V(s')] online, expert and policy states
    v0:            (1−γ)·E_ρ0[V(s0)]                    offline, initial states
and E_χ² over expert samples (offline variants) or expert and policy samples (``value``),
as in the official implementation; ``chi2_rows`` chooses either for any variant (the official
``method.regularize`` is ``all``).

**Behavioural cloning** fits π(a|s) = softmax(Q(s,·)/α) to the expert's actions:
L_BC = −E_expert[log π(a|s)].

**SQIL** (Reddy et al. 2020) is soft Q-learning with a fixed reward, 1 on expert transitions and
0 on the agent's own: L_SQIL = E_expert∪policy[(Q(s,a) − (r + γ(1−d)·V(s')))²]. It needs policy
samples, so it only runs online.

**Soft Q-learning** on the game's reward (``sql``, for training experts; Haarnoja et al. 2017) is
the same backup with the env's reward r in place of a fixed one, over n steps:
L_SQL = E_policy[ℓ(Q(s_t,a_t) − (Σ_{j<m} γ^j r_{t+j} + γ^m(1−d)·V(s_{t+m})))] with ℓ the square or
the Huber function; as α → 0, V becomes max Q and this is DQN's loss.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Variant = Literal["value_expert", "value", "v0"]
VARIANTS: tuple[str, ...] = ("value_expert", "value", "v0")
Chi2Rows = Literal["auto", "expert", "all"]
CHI2_ROWS: tuple[str, ...] = ("auto", "expert", "all")


def soft_value(q: Tensor, alpha: float) -> Tensor:
    """V(s) = α·logsumexp(Q(s,·)/α) over the last (action) dimension."""
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def taken(q: Tensor, actions: Tensor) -> Tensor:
    """Q(s,a) of the taken actions: (B, A), (B,) -> (B,)."""
    return q.gather(1, actions.long().unsqueeze(1)).squeeze(1)


def discounted_next_value(next_v: Tensor, terminated: Tensor, gamma: float) -> Tensor:
    """γ(1−d)·V(s'): what the next state is worth now (nothing after a terminal state)."""
    return gamma * (1.0 - terminated.float()) * next_v


def implicit_reward(q_taken: Tensor, next_v: Tensor, terminated: Tensor, gamma: float) -> Tensor:
    """r(s,a) = Q(s,a) − γ(1−d)·V(s'): the reward a soft-Q function implies."""
    return q_taken - discounted_next_value(next_v, terminated, gamma)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is true, without indexing: no data-dependent shape and no
    read back to the host, so the loss can be captured in a CUDA graph (`visual_iq.train.gpu.capture`)."""
    mask = mask.bool()  # `where`, not a product: a non-finite value outside the mask stays out
    return torch.where(mask, values, 0.0).sum() / mask.sum()


def chi2_on_all_rows(variant: Variant, chi2_rows: Chi2Rows) -> bool:
    """Whether the χ² term averages over expert and policy rows (``all``; ``auto``: for ``value``)."""
    return chi2_rows == "all" or (chi2_rows == "auto" and variant == "value")


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
    chi2_rows: Chi2Rows = "auto",
    initial_v: Tensor | None = None,
    with_metrics: bool = True,
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
        chi2_rows: rows the χ² term averages over: ``expert``, ``all``, or ``auto`` (``all`` for
            ``value``, ``expert`` otherwise).
        initial_v: (N,) V(s0) of initial states; required by ``v0``.
        with_metrics: also return the terms below; False returns none and reads nothing back
            to the host (whether policy rows exist), as a captured update needs.

    Returns:
        (loss, metrics) where metrics hold detached terms: ``reward_loss``, ``value_loss``,
        ``chi2_loss``, ``reward_expert``, ``reward_policy`` (if policy rows), ``v_expert``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown IQ variant {variant!r}; choose one of {VARIANTS}")
    if chi2_rows not in CHI2_ROWS:
        raise ValueError(f"unknown chi2_rows {chi2_rows!r}; choose one of {CHI2_ROWS}")
    is_expert = is_expert.bool()
    v = soft_value(q, alpha)
    reward = implicit_reward(taken(q, actions), next_v, terminated, gamma)
    value_step = v - discounted_next_value(next_v, terminated, gamma)

    reward_loss = -masked_mean(reward, is_expert)
    if variant == "value_expert":
        value_loss = masked_mean(value_step, is_expert)
    elif variant == "value":
        value_loss = value_step.mean()
    else:
        if initial_v is None:
            raise ValueError("the v0 variant needs initial_v, the values of initial states")
        value_loss = (1.0 - gamma) * initial_v.mean()
    loss = reward_loss + value_loss
    chi2_loss = None
    if chi2_alpha is not None:
        squared = reward**2
        all_rows = chi2_on_all_rows(variant, chi2_rows)
        chi2_loss = (squared.mean() if all_rows else masked_mean(squared, is_expert)) / (4.0 * chi2_alpha)
        loss = loss + chi2_loss
    if not with_metrics:
        return loss, {}

    metrics = {
        "reward_loss": reward_loss.detach(),
        "value_loss": value_loss.detach(),
        "reward_expert": -reward_loss.detach(),
        "v_expert": masked_mean(v.detach(), is_expert),
    }
    if (~is_expert).any():
        metrics["reward_policy"] = masked_mean(reward.detach(), ~is_expert)
    if chi2_loss is not None:
        metrics["chi2_loss"] = chi2_loss.detach()
    return loss, metrics


def bc_loss(q: Tensor, actions: Tensor, is_expert: Tensor, *, alpha: float,
            with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy of softmax(Q/α) on the expert rows' actions; metrics: ``bc_loss``."""
    loss = masked_mean(F.cross_entropy(q / alpha, actions.long(), reduction="none"), is_expert.bool())
    return loss, ({"bc_loss": loss.detach()} if with_metrics else {})


def sqil_loss(
    q: Tensor, actions: Tensor, next_v: Tensor, terminated: Tensor, is_expert: Tensor, *, gamma: float,
    with_metrics: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Soft Q-learning towards r + γ(1−d)V(s') with r = 1 on expert and 0 on policy rows.

    Metrics: ``td_loss``, ``q_taken_expert`` and (if any policy rows) ``q_taken_policy``.
    """
    is_expert = is_expert.bool()
    q_taken = taken(q, actions)
    loss = F.mse_loss(q_taken, is_expert.float() + discounted_next_value(next_v, terminated, gamma))
    if not with_metrics:
        return loss, {}
    metrics = {"td_loss": loss.detach(), "q_taken_expert": masked_mean(q_taken.detach(), is_expert)}
    if (~is_expert).any():
        metrics["q_taken_policy"] = masked_mean(q_taken.detach(), ~is_expert)
    return loss, metrics


TDLoss = Literal["mse", "huber"]
TD_LOSSES: tuple[str, ...] = ("mse", "huber")


def soft_q_learning_loss(q: Tensor, actions: Tensor, returns: Tensor, next_v: Tensor, bootstrap: Tensor, *,
                         td_loss: TDLoss = "huber", with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Soft Q-learning on the game's reward: Q(s,a) towards ``returns`` + ``bootstrap``·V(s').

    Args:
        q: (B, A) online Q(s,·).
        actions: (B,) actions taken.
        returns: (B,) Σ_{j<m} γ^j r_{t+j}, the rewards of the m steps each transition spans.
        next_v: (B,) V of the observation m steps on (no gradient).
        bootstrap: (B,) γ^m·(1−d): what that value is worth now (0 after a terminal state).
        td_loss: ``mse`` (square) or ``huber`` (square within ±1, linear beyond: DQN's).

    Metrics: ``td_loss``, ``q_taken``, ``td_target``.
    """
    q_taken = taken(q, actions)
    target = returns + bootstrap * next_v
    loss = (F.huber_loss if td_loss == "huber" else F.mse_loss)(q_taken, target)
    if not with_metrics:
        return loss, {}
    return loss, {"td_loss": loss.detach(), "q_taken": q_taken.detach().mean(), "td_target": target.mean()}
