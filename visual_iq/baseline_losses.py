"""The two baselines IQ-Learn is compared with, as pure loss functions over the same soft-Q network.

Behavioural cloning (BC) fits the soft-Q policy π(a|s) = softmax(Q(s,·)/α) to the expert's
actions by cross-entropy:

    L_BC = −E_expert[log π(a|s)]

SQIL (Reddy et al. 2020, "SQIL: Imitation Learning via Reinforcement Learning with Sparse
Rewards") runs soft Q-learning with a fixed reward: 1 on expert transitions, 0 on the agent's own:

    L_SQIL = E_expert∪policy[(Q(s,a) − (r + γ(1−d)·V(s')))²],   r = 1 (expert) or 0 (policy)

with V(s') = α·logsumexp(Q_target(s',·)/α). It needs policy samples, so it only runs online.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bc_loss(q: Tensor, actions: Tensor, is_expert: Tensor, *, alpha: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy of softmax(Q/α) on the expert rows' actions; metrics: ``bc_loss``."""
    is_expert = is_expert.bool()
    loss = F.cross_entropy(q[is_expert] / alpha, actions[is_expert].long())
    return loss, {"bc_loss": loss.detach()}


def sqil_loss(
    q: Tensor, actions: Tensor, next_v: Tensor, terminated: Tensor, is_expert: Tensor, *, gamma: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Soft Q-learning towards r + γ(1−d)V(s') with r = 1 on expert and 0 on policy rows.

    Metrics: ``td_loss``, ``q_taken_expert`` and (if any policy rows) ``q_taken_policy``.
    """
    is_expert = is_expert.bool()
    q_taken = q.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    target = is_expert.float() + gamma * (1.0 - terminated.float()) * next_v
    loss = F.mse_loss(q_taken, target)
    metrics = {"td_loss": loss.detach(), "q_taken_expert": q_taken[is_expert].detach().mean()}
    if (~is_expert).any():
        metrics["q_taken_policy"] = q_taken[~is_expert].detach().mean()
    return loss, metrics
