"""How online training acts: the soft-Q policy, with ε-greedy exploration on top where configured.

The soft-Q policy samples softmax(Q/α), which explores by itself where actions are worth about the
same. Reinforcement learning from the game's reward (``method: sql``) with a small α acts almost
greedily, so, as DQN does, a uniformly random action replaces the policy's with probability ε, which
falls linearly from ``epsilon_start`` to ``epsilon_end`` over the first ``epsilon_steps`` env steps.
ε is a function of the env steps taken (`visual_iq.train.collector.env_steps_at_update`), so a
resumed run explores as one that never stopped.
"""

from __future__ import annotations

import numpy as np

from visual_iq.algo.agent import SoftQAgent
from visual_iq.train.config import Online
from visual_iq.train.rollout import Policy, uniform_policy


def linear_epsilon(env_steps: int, start: float, end: float, steps: int) -> float:
    """ε after ``env_steps`` env steps: ``start`` at 0, ``end`` from ``steps`` on, linear in between."""
    if env_steps >= steps:
        return end
    return start + (end - start) * env_steps / steps


class Explorer:
    """The behaviour policy: `SoftQAgent.act` sampling softmax(Q/α) (or greedy), each action replaced by a
    uniform one with probability ε (`linear_epsilon`)."""

    def __init__(self, agent: SoftQAgent, num_actions: int, schedule: tuple[float, float, int] = (0.0, 0.0, 0),
                 seed: int = 0, sample: bool = True) -> None:
        """``schedule``: ε's start, end, and the env steps from one to the other; ``sample``: sample
        softmax(Q/α), else act greedily."""
        self.agent, self.num_actions, self.schedule, self.sample = agent, num_actions, schedule, sample
        self.rng = np.random.default_rng(seed)

    @classmethod
    def for_online(cls, agent: SoftQAgent, num_actions: int, online: Online, seed: int) -> "Explorer":
        """The explorer the ``online`` settings describe (``explore``, ``epsilon_*``)."""
        schedule = (online.epsilon_start, online.epsilon_end, online.epsilon_steps)
        return cls(agent, num_actions, schedule, seed, sample=online.explore == "sample")

    def epsilon(self, env_steps: int) -> float:
        return linear_epsilon(env_steps, *self.schedule)

    def policy(self, env_steps: int) -> Policy:
        """The policy to act with after ``env_steps`` env steps."""
        epsilon = self.epsilon(env_steps)
        if epsilon == 0.0:
            return self.act
        return lambda observations: self.act(observations, epsilon)

    def act(self, observations: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        actions = self.agent.act(observations, sample=self.sample)
        if epsilon > 0.0:
            random = self.rng.random(len(actions)) < epsilon
            actions = np.where(random, self.rng.integers(self.num_actions, size=len(actions)), actions)
        return actions

    def warmup(self, uniform: bool, seed: int) -> Policy:
        """Who fills the replay before learning starts: uniform actions, or this policy at ε(0)."""
        return uniform_policy(self.num_actions, seed=seed) if uniform else self.policy(0)
