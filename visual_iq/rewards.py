"""What a trained agent recovered, read on demonstrations it was not trained on: the reward,
r(s,a) = Q(s,a) − γ(1−d)·V(s'), and how well it tracks the true one; and the policy, how often
its greedy action is the demonstrated one (a measure of generalisation that needs no game played).
"""

from __future__ import annotations

import numpy as np
import torch

from visual_iq.agent import SoftQAgent
from visual_iq.demos import Episode
from visual_iq.losses import implicit_reward, soft_value, taken


@torch.no_grad()
def episode_q_values(agent: SoftQAgent, episode: Episode, *, batch_size: int = 512) -> torch.Tensor:
    """(T+1, actions) fp32 Q of every observation of ``episode`` (the last one included), on the CPU."""
    observations = torch.from_numpy(episode.observations(agent.settings.stack_size))
    return torch.cat([agent.q_values(observations[i:i + batch_size]).cpu()
                      for i in range(0, len(observations), batch_size)])


def implicit_rewards(agent: SoftQAgent, episode: Episode) -> np.ndarray:
    """(T,) implicit reward of every step of ``episode`` under the agent's soft-Q network."""
    q = episode_q_values(agent, episode)
    actions = torch.from_numpy(episode.actions.astype(np.int64))
    next_v = soft_value(q[1:], agent.alpha)
    terminated = torch.from_numpy(episode.terminated)
    return implicit_reward(taken(q[:-1], actions), next_v, terminated, agent.gamma).numpy()


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their average rank (as Spearman's rho needs)."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0
        start = end + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks); NaN if either input is constant."""
    return pearson(_ranks(x), _ranks(y))


def reward_correlations(agent: SoftQAgent, episodes: list[Episode]) -> dict[str, float]:
    """How well the implicit reward tracks the true game reward over ``episodes``.

    ``step_*``: per-step correlation over all steps of all episodes; ``return_*``: correlation of
    summed implicit reward with episode return (NaN with fewer than 3 episodes).
    """
    implicit = [implicit_rewards(agent, episode) for episode in episodes]
    true = [episode.rewards for episode in episodes]
    steps_implicit, steps_true = np.concatenate(implicit), np.concatenate(true)
    returns_implicit = np.array([rewards.sum() for rewards in implicit])
    returns_true = np.array([rewards.sum() for rewards in true])
    enough = len(episodes) >= 3
    return {
        "step_pearson": pearson(steps_implicit, steps_true),
        "step_spearman": spearman(steps_implicit, steps_true),
        "return_pearson": pearson(returns_implicit, returns_true) if enough else float("nan"),
        "return_spearman": spearman(returns_implicit, returns_true) if enough else float("nan"),
    }


def action_agreement(agent: SoftQAgent, episodes: list[Episode]) -> dict[str, float]:
    """How often the agent's greedy action is the demonstrated one, over all steps of ``episodes``.

    ``agreement``: that share; ``base_rate``: the share of the commonest demonstrated action (what
    always playing it would score); ``balanced_agreement``: per-action recall averaged over the
    actions the demonstrator used, 1/(number of actions used) for a constant policy.
    """
    greedy = np.concatenate([episode_q_values(agent, episode)[:-1].argmax(dim=1).numpy() for episode in episodes])
    demonstrated = np.concatenate([episode.actions.astype(np.int64) for episode in episodes])
    used = np.unique(demonstrated)
    recalls = [float(np.mean(greedy[demonstrated == action] == action)) for action in used]
    return {
        "agreement": float(np.mean(greedy == demonstrated)),
        "base_rate": float(np.bincount(demonstrated).max() / len(demonstrated)),
        "balanced_agreement": float(np.mean(recalls)),
    }
