"""Evaluation plays whole episodes; the recorded first episode matches what was scored."""

import numpy as np

from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.train.evaluation import evaluate
from visual_iq.train.rollout import uniform_policy

def test_first_episode_matches_its_score_and_replays_in_the_env(catch_settings):
    result = evaluate(uniform_policy(3, seed=0), catch_settings, 3, seed=7, record_first=True)
    episode = result.first_episode
    assert episode is not None
    assert episode.length == result.lengths[0]
    assert episode.episode_return == result.returns[0]
    assert episode.terminated[-1] and not episode.terminated[:-1].any()
    # Replaying the recorded actions from the same seed gives the recorded frames and rewards.
    env = make_env(catch_settings)
    observation, _ = env.reset(seed=7)
    assert np.array_equal(observation[-1], episode.frames[0])
    for t, action in enumerate(episode.actions):
        observation, reward, *_ = env.step(int(action))
        assert np.array_equal(observation[-1], episode.frames[t + 1]) and reward == episode.rewards[t]


def test_no_episode_unless_asked(catch_settings):
    result = evaluate(lambda obs: np.zeros(len(obs), np.int64), catch_settings, 2, seed=1)
    assert result.first_episode is None
    assert result.returns.shape == (2,) and np.all(result.lengths == 30)  # 5 balls x 6 steps


def _pixel_policy(num_actions: int):
    """A deterministic policy of the observation alone, so every env's game depends on its seed only."""
    return lambda obs: obs.reshape(len(obs), -1).sum(axis=1, dtype=np.int64) % num_actions


def test_groups_play_the_same_games_as_all_envs_at_once():
    # Breakout with sticky actions, no-op starts and FIRE at new lives: every per-env random draw
    # must come from the env's own seed, not from its place in a group.
    settings = EnvSettings("Breakout", fire_on_new_life=True, max_episode_frames=2_000)
    together = evaluate(_pixel_policy(4), settings, 5, seed=20_000, record_first=True)
    in_groups = evaluate(_pixel_policy(4), settings, 5, seed=20_000, record_first=True, envs_at_once=2)
    assert np.array_equal(together.returns, in_groups.returns)
    assert np.array_equal(together.lengths, in_groups.lengths)
    assert len(set(together.returns.tolist()) | set(together.lengths.tolist())) > 2  # the games differ
    assert np.array_equal(together.first_episode.actions, in_groups.first_episode.actions)
    # A group is seeded where it starts: the second group's first game is episode 2's.
    alone = evaluate(_pixel_policy(4), settings, 1, seed=20_002)
    assert alone.returns[0] == together.returns[2] and alone.lengths[0] == together.lengths[2]
