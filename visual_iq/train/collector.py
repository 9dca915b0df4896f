"""Acting for online training: a `VectorRollout` whose steps fill a policy replay buffer."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.env.envs import EnvSettings
from visual_iq.train.config import Online
from visual_iq.train.rollout import Policy, VectorRollout


class Collector:
    """Steps ``num_envs`` envs with a policy and appends every transition to ``buffer`` (a stream per env).

    The autoreset step after an episode ends is not a transition: its action and zero reward
    are not recorded, only the reset observation that starts the next episode.
    """

    def __init__(self, settings: EnvSettings, num_envs: int, buffer: FrameReplayBuffer, seed: int = 0,
                 env_steps_before: int = 0) -> None:
        if buffer.num_streams != num_envs:
            raise ValueError(f"buffer has {buffer.num_streams} streams for {num_envs} envs")
        self.rollout = VectorRollout(settings, num_envs, seed)
        self.buffer = buffer
        self.finished_returns: deque[float] = deque(maxlen=20)
        self.env_steps_before = env_steps_before
        """Env steps of the run before this collector (a resumed run's), counted in ``rollout/env_steps``."""
        self.buffer.add_observations(self.rollout.observations, self.rollout.episode_steps)

    def collect(self, policy: Policy, steps: int = 1) -> None:
        """``steps`` steps of every env."""
        for _ in range(steps):
            step = self.rollout.step(policy)
            self.buffer.add_outcomes(step.actions, step.rewards, step.terminated, step.truncated, step.acted)
            self.buffer.add_observations(step.observations, step.episode_steps)
            self.finished_returns.extend(step.episode_returns[step.done].tolist())

    @property
    def env_steps(self) -> int:
        return self.env_steps_before + self.rollout.env_steps

    def metrics(self) -> dict[str, float]:
        """``rollout/`` figures for the logger: env steps, their rate, recent episode returns."""
        metrics = {"rollout/env_steps_per_s": self.rollout.steps_per_second(),
                   "rollout/env_steps": float(self.env_steps)}
        if self.finished_returns:
            metrics["rollout/return_mean"] = float(np.mean(self.finished_returns))
        return metrics

    def close(self) -> None:
        self.rollout.close()


def env_steps_before_update(update: int, env_steps_per_update: float) -> int:
    """Steps of every env to take before update ``update`` (0-based), ``env_steps_per_update`` on
    average: 1 → 1 each; 4 → 4 each; 0.25 → 1 before every 4th update (the 4th, 8th, ...)."""
    return math.floor((update + 1) * env_steps_per_update) - math.floor(update * env_steps_per_update)


def env_steps_at_update(update: int, online: Online) -> int:
    """Env steps (of all envs together) taken before update ``update`` of an online run: the warm-up's,
    then `env_steps_before_update`'s (steps after an episode's end, which only reset, included)."""
    warmup = -(-online.learning_starts // online.num_envs)
    return online.num_envs * (warmup + math.floor(update * online.env_steps_per_update))
