"""Evaluation plays whole episodes; the recorded first episode matches what was scored."""

import numpy as np

from visual_iq.envs import make_env
from visual_iq.evaluation import evaluate
from visual_iq.rollout import uniform_policy

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
