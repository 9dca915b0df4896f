"""Acting for online training: steps vectorised envs with a policy and fills a replay buffer."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import numpy as np

from visual_iq.buffer import FrameReplayBuffer
from visual_iq.envs import EnvSettings, make_vector_env

Policy = Callable[[np.ndarray], np.ndarray]


class Collector:
    """Owns the envs, the current observations and episode statistics.

    Each `collect` call takes one step in every env with ``policy(observations) -> actions``
    and appends the results to ``buffer`` (one stream per env). With ale-py's NEXT_STEP autoreset
    the step after an episode ends is a reset: its action and zero reward are not recorded.
    """

    def __init__(self, settings: EnvSettings, num_envs: int, buffer: FrameReplayBuffer, seed: int = 0) -> None:
        if buffer.num_streams != num_envs:
            raise ValueError(f"buffer has {buffer.num_streams} streams for {num_envs} envs")
        self.env = make_vector_env(settings, num_envs)
        self.buffer = buffer
        self.observations, _ = self.env.reset(seed=seed)
        self.episode_steps = np.zeros(num_envs, np.int32)
        self.episode_returns = np.zeros(num_envs, np.float64)
        self.was_done = np.zeros(num_envs, bool)
        self.finished_returns: deque[float] = deque(maxlen=20)
        self.env_steps = 0
        self.started = time.perf_counter()
        self.buffer.add_observations(self.observations, self.episode_steps)

    def collect(self, policy: Policy, steps: int = 1) -> None:
        for _ in range(steps):
            actions = policy(self.observations)
            observations, rewards, terminated, truncated, _ = self.env.step(actions)
            acted = ~self.was_done
            self.buffer.add_outcomes(actions, rewards, terminated, truncated, acted)
            self.episode_steps = np.where(self.was_done, 0, self.episode_steps + 1)
            self.buffer.add_observations(observations, self.episode_steps)
            self.episode_returns[acted] += rewards[acted]
            done = terminated | truncated
            for index in np.flatnonzero(done):
                self.finished_returns.append(float(self.episode_returns[index]))
                self.episode_returns[index] = 0.0
            self.was_done = done
            self.observations = observations
            self.env_steps += int(acted.sum())

    def steps_per_second(self) -> float:
        return self.env_steps / max(time.perf_counter() - self.started, 1e-9)

    def close(self) -> None:
        self.env.close()
