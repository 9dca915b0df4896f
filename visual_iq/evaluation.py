"""Evaluation episodes in the real env (sticky actions as configured), batched over envs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from visual_iq.demos import Episode
from visual_iq.envs import EnvSettings, make_vector_env
from visual_iq.recording import EpisodeBuilder


@dataclass
class EvaluationResult:
    returns: np.ndarray
    """(episodes,) undiscounted returns."""
    lengths: np.ndarray
    """(episodes,) steps per episode."""
    first_episode: Episode | None
    """The first env's whole episode (frames, actions, rewards), if asked for: for a video and
    for checking the implicit reward against the true one."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def evaluate(
    policy: Callable[[np.ndarray], np.ndarray],
    settings: EnvSettings,
    episodes: int,
    *,
    seed: int = 10_000,
    num_envs: int | None = None,
    record_first: bool = False,
    max_steps: int = 30_000,
) -> EvaluationResult:
    """Play ``episodes`` full episodes with ``policy(observations) -> actions`` in parallel envs.

    Each env plays exactly one episode (``num_envs`` defaults to ``episodes``), so the result
    does not favour short episodes. Episodes still running after ``max_steps`` steps count as
    they stand. ``record_first``: also return the first env's episode as an `Episode`.
    """
    num_envs = num_envs or episodes
    if num_envs != episodes:
        raise ValueError("evaluate plays one episode per env: num_envs must equal episodes")
    env = make_vector_env(settings, num_envs)
    try:
        observations, _ = env.reset(seed=seed)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, np.int64)
        running = np.ones(episodes, bool)
        first = EpisodeBuilder(settings, observations[0], seed) if record_first else None
        for _ in range(max_steps):
            actions = policy(observations)
            was_running = running[0]
            observations, rewards, terminated, truncated, _ = env.step(actions)
            returns[running] += rewards[running]
            lengths[running] += 1
            if first is not None and was_running:
                first.add(int(actions[0]), float(rewards[0]), observations[0], terminated[0], truncated[0])
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        env.close()
    episode = first.finish("agent") if first is not None and first.actions else None
    return EvaluationResult(returns, lengths, episode)
