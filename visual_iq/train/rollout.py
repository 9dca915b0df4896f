"""Vectorised envs stepped by a policy, with each env's episode bookkeeping.

The one acting loop that online training (`visual_iq.train.collector`) and evaluation
(`visual_iq.train.evaluation`) share. ale-py's vector env resets an episode on the step after it ends
(``AutoresetMode.NEXT_STEP``): that step's action is ignored and its reward is 0, so `Step.acted`
marks the envs whose step was a real one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from visual_iq.env.envs import EnvSettings, make_vector_env
from visual_iq.env.fire import EXECUTED_ACTION

Policy = Callable[[np.ndarray], np.ndarray]
"""Maps a batch of uint8 observations (N, stack, H, W) to N actions."""


def uniform_policy(num_actions: int, seed: int = 0) -> Policy:
    """Uniformly random actions (e.g. to fill a replay buffer before learning starts)."""
    rng = np.random.default_rng(seed)
    return lambda observations: rng.integers(num_actions, size=len(observations))


@dataclass(frozen=True)
class Step:
    """One step of every env: what was done and what came of it, per env."""

    actions: np.ndarray
    observations: np.ndarray
    """The observations after the step (a reset observation where the step was a reset)."""
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    acted: np.ndarray
    """False where the step was an autoreset (action ignored, reward 0)."""
    episode_returns: np.ndarray
    """Return of each env's episode so far, this step included."""
    episode_steps: np.ndarray
    """Steps of each env's episode so far (0 for a reset observation)."""

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VectorRollout:
    """``num_envs`` envs of `make_vector_env`, reset with ``seed``; `step` advances all of them once."""

    def __init__(self, settings: EnvSettings, num_envs: int, seed: int = 0) -> None:
        self.env = make_vector_env(settings, num_envs)
        self.observations, _ = self.env.reset(seed=seed)
        self.episode_steps = np.zeros(num_envs, np.int32)
        self.episode_returns = np.zeros(num_envs, np.float64)
        self.was_done = np.zeros(num_envs, bool)
        self.env_steps = 0
        """Real (acted) env steps so far, over all envs."""
        self.started = time.perf_counter()

    def step(self, policy: Policy) -> Step:
        actions = policy(self.observations)
        observations, rewards, terminated, truncated, info = self.env.step(actions)
        actions = info.get(EXECUTED_ACTION, actions)  # FIRE where `visual_iq.env.fire` pressed it
        acted = ~self.was_done
        self.episode_steps = np.where(self.was_done, 0, self.episode_steps + 1)
        self.episode_returns = np.where(self.was_done, 0.0, self.episode_returns) + np.where(acted, rewards, 0.0)
        self.was_done = terminated | truncated
        self.observations = observations
        self.env_steps += int(acted.sum())
        return Step(actions, observations, rewards, terminated, truncated, acted,
                    self.episode_returns.copy(), self.episode_steps.copy())

    def steps_per_second(self) -> float:
        return self.env_steps / max(time.perf_counter() - self.started, 1e-9)

    def close(self) -> None:
        self.env.close()
