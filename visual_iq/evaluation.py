"""Evaluation episodes in the real env (sticky actions as configured), batched over envs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from visual_iq.envs import EnvSettings, make_vector_env


@dataclass
class EvaluationResult:
    returns: np.ndarray
    """(episodes,) undiscounted returns."""
    lengths: np.ndarray
    """(episodes,) steps per episode."""
    frames: np.ndarray | None
    """(T, H, W) newest frames of the first episode, if asked for (for a video)."""

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
    record_frames: bool = False,
    max_steps: int = 30_000,
) -> EvaluationResult:
    """Play ``episodes`` full episodes with ``policy(observations) -> actions`` in parallel envs.

    Each env plays exactly one episode (``num_envs`` defaults to ``episodes``), so the result
    does not favour short episodes. Episodes still running after ``max_steps`` steps count as
    they stand.
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
        frames = [observations[0, -1].copy()] if record_frames else None
        for _ in range(max_steps):
            actions = policy(observations)
            observations, rewards, terminated, truncated, _ = env.step(actions)
            returns[running] += rewards[running]
            lengths[running] += 1
            if frames is not None and running[0]:
                frames.append(observations[0, -1].copy())
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        env.close()
    return EvaluationResult(returns, lengths, np.stack(frames) if frames else None)
