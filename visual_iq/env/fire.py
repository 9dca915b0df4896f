"""FIRE pressed for the agent at the start of every life, for games that wait for it (Breakout).

A demonstrator presses FIRE once per life to launch the ball, so it is a tiny share of the demo
actions (0.23 % in the shipped Breakout demos) and a greedy imitator may never choose it: the game
then waits, ball-less, until the episode is truncated. Atari RL pipelines press it for the agent
(Stable-Baselines3's ``FireResetEnv``; ale-py's ``use_fire_reset``, on reset only). Here the first
`FIRE_STEPS` actions of every episode and of every life after a lost one are replaced by FIRE, in
the single env (`FireOnNewLife`) and the vector env (`VectorFireOnNewLife`) alike, and the action
actually executed is returned in ``info["executed_action"]``, so that recorded transitions hold what
was done.

Why more than one: with sticky actions the emulator keeps the previous action on each frame with
probability p, so a FIRE step of 4 frames is lost with probability p⁴ (0.4 % at p = 0.25), and the
game then waits, ball-less, until truncation (27,000 steps). Pressing FIRE once per life, 22 of 64
envs of a NOOP agent hung within 3,000 steps, ~0.4 % of lives (`research/fire_hangs.py`), and
one of a trained agent's 100 test games scored 0 in 27,000 steps. Two steps make it p⁸ (1.5e-5);
on Breakout a FIRE while the ball is in play changes nothing.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

EXECUTED_ACTION = "executed_action"
"""The info key holding the action(s) the env actually executed."""

FIRE_STEPS = 2
"""Steps of every new life on which FIRE is pressed for the agent."""


class NewLifeRule:
    """For a batch of envs: which must press FIRE on their next step (the first `FIRE_STEPS` steps
    after a new episode or a lost life)."""

    def __init__(self, fire_action: int, num_envs: int, fire_steps: int = FIRE_STEPS) -> None:
        self.fire_action = fire_action
        self.fire_steps = fire_steps
        self.presses_left = np.full(num_envs, fire_steps, np.int64)
        self.lives = np.zeros(num_envs, np.int64)

    def reset(self, lives: np.ndarray) -> None:
        self.presses_left[:] = self.fire_steps
        self.lives = np.asarray(lives, np.int64).copy()

    def override(self, actions: np.ndarray) -> np.ndarray:
        return np.where(self.presses_left > 0, self.fire_action, np.asarray(actions))

    def observe(self, lives: np.ndarray, new_episode: np.ndarray) -> None:
        """After a step: ``lives`` now, and which envs' step started a new episode (an autoreset)."""
        lives = np.asarray(lives, np.int64)
        new_life = np.asarray(new_episode, bool) | (lives < self.lives)
        self.presses_left = np.where(new_life, self.fire_steps, np.maximum(self.presses_left - 1, 0))
        self.lives = lives.copy()


class FireOnNewLife(gym.Wrapper):
    """A single env whose first action of every episode and every new life is FIRE."""

    def __init__(self, env: gym.Env, fire_action: int) -> None:
        super().__init__(env)
        self.rule = NewLifeRule(fire_action, 1)

    def reset(self, **kwargs: Any):
        observation, info = self.env.reset(**kwargs)
        self.rule.reset(np.array([info["lives"]]))
        return observation, info

    def step(self, action):
        executed = int(self.rule.override(np.array([action]))[0])
        observation, reward, terminated, truncated, info = self.env.step(executed)
        self.rule.observe(np.array([info["lives"]]), np.array([False]))
        info[EXECUTED_ACTION] = executed
        return observation, reward, terminated, truncated, info


class VectorFireOnNewLife(gym.vector.VectorWrapper):
    """A vector env (autoreset on the next step) whose envs press FIRE at every episode's and life's start."""

    def __init__(self, env: gym.vector.VectorEnv, fire_action: int) -> None:
        super().__init__(env)
        self.rule = NewLifeRule(fire_action, env.num_envs)
        self.was_done = np.zeros(env.num_envs, bool)

    def reset(self, **kwargs: Any):
        observations, info = self.env.reset(**kwargs)
        self.rule.reset(info["lives"])
        self.was_done[:] = False
        return observations, info

    def step(self, actions):
        executed = self.rule.override(actions)
        observations, rewards, terminated, truncated, info = self.env.step(executed)
        self.rule.observe(info["lives"], self.was_done)  # a step after an end was the autoreset
        self.was_done = terminated | truncated
        info = dict(info)
        info[EXECUTED_ACTION] = executed
        return observations, rewards, terminated, truncated, info
