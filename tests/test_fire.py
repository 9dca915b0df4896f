"""FIRE at the start of every life (`visual_iq.env.fire`), in the single env, the vector env and the rollout."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.errors import EnvSettingsError
from visual_iq.env.fire import EXECUTED_ACTION, FIRE_STEPS, FireOnNewLife, NewLifeRule
from visual_iq.train.rollout import VectorRollout

FIRE, NOOP = 1, 0  # Breakout's minimal action set: NOOP, FIRE, RIGHT, LEFT
SETTINGS = EnvSettings("Breakout", sticky_actions=0.0, noop_max=0)


def _noop_lives(env, steps: int) -> tuple[int, list[int], bool]:
    """Play NOOP for ``steps`` steps (or until the episode ends): lives at the start, executed actions, ended."""
    _, info = env.reset(seed=0)
    start_lives, executed = int(info["lives"]), []
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(NOOP)
        executed.append(int(info.get(EXECUTED_ACTION, NOOP)))
        if terminated or truncated:
            return start_lives, executed, True
    return start_lives, executed, False


def test_rule_fires_on_the_first_two_steps_of_a_new_episode_or_life_only():
    assert FIRE_STEPS == 2
    rule = NewLifeRule(FIRE, 3)
    rule.reset(np.array([5, 5, 5]))
    for _ in range(FIRE_STEPS):
        assert rule.override(np.array([2, 3, 0])).tolist() == [FIRE, FIRE, FIRE]
        rule.observe(np.array([5, 5, 5]), np.array([False, False, False]))
    assert rule.override(np.array([2, 3, 0])).tolist() == [2, 3, 0]
    rule.observe(np.array([4, 5, 5]), np.array([False, False, True]))  # env 0 lost a life, env 2 restarted
    assert rule.override(np.array([2, 3, 0])).tolist() == [FIRE, 3, FIRE]
    rule.observe(np.array([4, 5, 5]), np.array([False, False, False]))
    assert rule.override(np.array([2, 3, 0])).tolist() == [FIRE, 3, FIRE]
    rule.observe(np.array([4, 5, 5]), np.array([False, False, False]))
    assert rule.override(np.array([2, 3, 0])).tolist() == [2, 3, 0]


class _SwallowsFirstFire(gym.Env):
    """A game that waits for FIRE and, like a sticky-action emulator now and then, ignores the first
    FIRE of each life; a launched ball is lost after 3 steps, 2 lives."""

    observation_space = gym.spaces.Box(0, 1, (1,), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.lives, self.fires_seen, self.ball_steps = 2, 0, None
        return np.zeros(1, np.uint8), {"lives": self.lives}

    def step(self, action):
        if self.ball_steps is None and action == FIRE:
            self.fires_seen += 1
            if self.fires_seen == 2:  # the first was swallowed
                self.ball_steps = 0
        elif self.ball_steps is not None:
            self.ball_steps += 1
            if self.ball_steps == 3:
                self.lives, self.fires_seen, self.ball_steps = self.lives - 1, 0, None
        return np.zeros(1, np.uint8), 0.0, self.lives == 0, False, {"lives": self.lives}


def test_a_swallowed_fire_does_not_leave_the_game_waiting():
    env = FireOnNewLife(_SwallowsFirstFire(), FIRE)
    lives, executed, ended = _noop_lives(env, 100)
    assert ended and executed.count(FIRE) == 2 * lives  # with one press per life it waited 100 steps


def test_without_fire_a_noop_agent_never_launches_the_ball_and_with_it_loses_every_life():
    plain = make_env(SETTINGS)
    try:
        lives, _, ended = _noop_lives(plain, 1500)
        assert not ended and plain.unwrapped.ale.lives() == lives == 5  # the game waits for FIRE
    finally:
        plain.close()
    firing = make_env(EnvSettings("Breakout", sticky_actions=0.0, noop_max=0, fire_on_new_life=True))
    try:
        lives, executed, ended = _noop_lives(firing, 5000)
    finally:
        firing.close()
    assert ended  # every ball launched and missed: the game is over
    assert executed[:2] == [FIRE, FIRE] and executed.count(FIRE) == FIRE_STEPS * lives  # per life, nothing else changed
    assert set(executed) == {NOOP, FIRE}


def test_vector_rollout_records_the_fire_it_executed():
    settings = EnvSettings("Breakout", sticky_actions=0.0, noop_max=0, fire_on_new_life=True)
    rollout = VectorRollout(settings, 2, seed=0)
    fires, ended = np.zeros(2, int), np.zeros(2, bool)
    try:
        for _ in range(5000):
            step = rollout.step(lambda observations: np.zeros(len(observations), np.int64))
            fires += (step.actions == FIRE) & step.acted & ~ended
            ended |= step.done
            if ended.all():
                break
    finally:
        rollout.close()
    assert ended.all() and fires.tolist() == [10, 10]  # FIRE_STEPS recorded FIREs per life in each env


def test_fire_on_new_life_needs_an_atari_game_with_fire():
    with pytest.raises(EnvSettingsError, match="Catch"):
        EnvSettings("visual_iq/Catch-v0", fire_on_new_life=True)
    with pytest.raises(EnvSettingsError, match="no FIRE action"):
        make_env(EnvSettings("Freeway", fire_on_new_life=True))  # Freeway: NOOP, UP, DOWN
    assert EnvSettings.from_dict({k: v for k, v in SETTINGS.to_dict().items()
                                  if k != "fire_on_new_life"}) == SETTINGS  # files of earlier versions
