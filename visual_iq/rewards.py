"""The reward IQ-Learn recovers: r(s,a) = Q(s,a) − γ(1−d)·V(s'), V = α·logsumexp(Q/α)."""

from __future__ import annotations

import numpy as np
import torch

from visual_iq.demos import Episode
from visual_iq.iq_loss import soft_value


@torch.no_grad()
def implicit_rewards(q_net: torch.nn.Module, episode: Episode, *, alpha: float, gamma: float,
                     batch_size: int = 512) -> np.ndarray:
    """(T,) implicit reward of every step of ``episode`` under the soft-Q network ``q_net``."""
    device = next(q_net.parameters()).device
    observations = torch.from_numpy(episode.observations())
    q_chunks = [q_net(observations[i:i + batch_size].to(device)).float().cpu()
                for i in range(0, len(observations), batch_size)]
    q = torch.cat(q_chunks)
    v = soft_value(q, alpha)
    actions = torch.from_numpy(episode.actions.astype(np.int64))
    q_taken = q[:-1].gather(1, actions[:, None]).squeeze(1)
    not_done = 1.0 - torch.from_numpy(episode.terminated).float()
    return (q_taken - gamma * not_done * v[1:]).numpy()


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
