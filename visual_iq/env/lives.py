"""A training episode that ends at every lost life while the game plays on (DQN's "episodic life").

Atari RL pipelines end the agent's episode when it loses a life, a denser signal than the end of
the game, but keep playing the same game: the next episode starts where the last life ended, with
fewer lives, so the agent also meets the game's later stages (stable-baselines3's
``EpisodicLifeEnv``, used by the IQ-Learn paper's code). ale-py's own ``episodic_life`` resets the
whole game instead (measured: lives go back to 5 and the frame count to 0 after each lost life),
so every episode would be the game's first life. `VectorLifeLossEnds` does it the first way on a
vector env that auto-resets on the next step:

- the step that loses a life (the game not over) returns ``terminated``;
- the env's next step is that episode's "reset": its action is replaced by NOOP, its reward is 0,
  and its observation starts the new episode, its older stacked frames zeroed as at a real reset.

Evaluation never uses it (`EnvSettings.for_evaluation`): scores are whole games.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

NOOP = 0
"""NOOP's index in every game's minimal action set."""


class VectorLifeLossEnds(gym.vector.VectorWrapper):
    """Ends each env's episode at a lost life; the game goes on (see the module docstring)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        count = env.num_envs
        self.stack_size = env.single_observation_space.shape[0]
        self.lives = np.zeros(count, np.int64)
        self.resetting = np.zeros(count, bool)  # the next step starts the episode after a lost life
        self.game_was_done = np.zeros(count, bool)  # the next step is the env's own autoreset
        self.steps_since_life_start = np.full(count, self.stack_size, np.int64)

    def reset(self, **kwargs: Any):
        observations, info = self.env.reset(**kwargs)
        self.lives = np.asarray(info["lives"], np.int64).copy()
        self.resetting[:] = False
        self.game_was_done[:] = False
        self.steps_since_life_start[:] = self.stack_size
        return observations, info

    def step(self, actions):
        resetting = self.resetting
        actions = np.where(resetting, NOOP, np.asarray(actions))
        observations, rewards, terminated, truncated, info = self.env.step(actions)
        lives = np.asarray(info["lives"], np.int64)
        rewards = np.where(resetting, 0.0, rewards).astype(np.asarray(rewards).dtype)
        game_done = terminated | truncated
        lost_life = (lives < self.lives) & ~game_done & ~resetting & ~self.game_was_done
        self.steps_since_life_start = np.where(
            resetting, 0, np.where(self.game_was_done, self.stack_size, self.steps_since_life_start + 1))
        observations = self._zero_frames_before_life_start(observations)
        self.resetting = lost_life
        self.game_was_done = game_done
        self.lives = lives.copy()
        return observations, rewards, terminated | lost_life, truncated, info

    def _zero_frames_before_life_start(self, observations: np.ndarray) -> np.ndarray:
        """Frames of a stack older than the episode's first (after a lost life) zeroed, as a reset pads them."""
        short = np.flatnonzero(self.steps_since_life_start < self.stack_size - 1)
        if len(short) == 0:
            return observations
        observations = observations.copy()
        for index in short:
            observations[index, : self.stack_size - 1 - self.steps_since_life_start[index]] = 0
        return observations
