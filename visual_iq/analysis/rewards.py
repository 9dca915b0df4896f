"""What a trained agent recovered, read on demonstrations it was not trained on: the reward,
r(s,a) = Q(s,a) − γ(1−d)·V(s'), and how well it tracks the true one; and the policy, how often
its greedy action is the demonstrated one (a measure of generalisation that needs no game played).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from visual_iq.algo.agent import SoftQAgent
from visual_iq.data.demos import Episode, episode_paths, load_episode
from visual_iq.env.envs import FRAME_FIELDS, check_observation_settings
from visual_iq.algo.losses import implicit_reward, soft_value, taken
from visual_iq.algo.objectives import action_agreement


def episodes_for_agent(agent: SoftQAgent, demos: str, first: int = 0, last: int | None = None) -> Iterator[Episode]:
    """Episodes ``first`` .. ``last``−1 of the demo directory ``demos``, each checked to hold frames the
    agent reads (`EnvSettingsError` naming the file otherwise). Only the frame settings must match: other
    settings may differ (Breakout agents press FIRE at each new life, the expert's demos were recorded
    without that wrapper), as when training reads demos."""
    for path in episode_paths(demos)[first:last]:
        episode = load_episode(path)
        check_observation_settings(episode.settings, agent.settings, str(path), FRAME_FIELDS)
        yield episode


@torch.no_grad()
def episode_q_values(agent: SoftQAgent, episode: Episode, *, batch_size: int = 512) -> torch.Tensor:
    """(T+1, actions) fp32 Q of every observation of ``episode`` (the last one included), on the CPU."""
    observations = torch.from_numpy(episode.observations(agent.settings.stack_size))
    return torch.cat([agent.q_values(observations[i:i + batch_size]).cpu()
                      for i in range(0, len(observations), batch_size)])


def implicit_rewards(agent: SoftQAgent, episode: Episode, q: torch.Tensor | None = None) -> np.ndarray:
    """(T,) implicit reward of every step of ``episode`` under the agent's soft-Q network
    (``q``: its `episode_q_values`, if already computed)."""
    q = episode_q_values(agent, episode) if q is None else q
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


def reward_correlations(agent: SoftQAgent, episodes: list[Episode],
                        q_values: list[torch.Tensor] | None = None) -> dict[str, float]:
    """How well the implicit reward tracks the true game reward over ``episodes``.

    ``step_*``: per-step correlation over all steps of all episodes; ``return_*``: correlation of
    summed implicit reward with episode return (NaN with fewer than 3 episodes). ``q_values``:
    the episodes' `episode_q_values`, if already computed.
    """
    q_values = q_values or [episode_q_values(agent, episode) for episode in episodes]
    implicit = [implicit_rewards(agent, episode, q) for episode, q in zip(episodes, q_values)]
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


def demo_action_agreement(agent: SoftQAgent, episodes: list[Episode],
                          q_values: list[torch.Tensor] | None = None) -> dict[str, float]:
    """`visual_iq.algo.objectives.action_agreement` of the agent's greedy actions with the recorded ones
    over all steps of ``episodes`` (the training metric, on episodes it was not trained on).
    ``q_values``: the episodes' `episode_q_values`, if already computed."""
    q_values = q_values or [episode_q_values(agent, episode) for episode in episodes]
    q = torch.cat([episode_q[:-1] for episode_q in q_values])  # the last observation has no action
    actions = torch.from_numpy(np.concatenate([episode.actions for episode in episodes]).astype(np.int64))
    return {name: float(value) for name, value in action_agreement(q, actions).items()}
