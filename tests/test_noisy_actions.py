"""DART-style noise for expert recording: the executed action is sometimes random."""

import numpy as np
import pytest

from visual_iq.env.envs import make_env
from visual_iq.record.judge import NoisyActions


def test_noise_replaces_about_the_asked_share_of_actions():
    env = NoisyActions(make_env("visual_iq/Catch-v0"), noise=0.3, seed=0)
    executed = np.array([env.action(1) for _ in range(4000)])
    replaced = np.mean(executed != 1)
    # A random action equals the given one 1/3 of the time: 0.3 * 2/3 = 0.2 are visibly replaced.
    assert 0.17 < replaced < 0.23
    assert set(np.unique(executed)) == {0, 1, 2}


def test_the_executed_action_is_reported():
    """The recorder tells the expert what was executed (its rollouts' sticky frames repeat it)."""
    told = []
    env = NoisyActions(make_env("visual_iq/Catch-v0"), noise=0.3, seed=0, on_action=told.append)
    executed = [env.action(1) for _ in range(200)]
    assert told == executed and any(a != 1 for a in told)


def test_no_noise_executes_the_given_action():
    env = NoisyActions(make_env("visual_iq/Catch-v0"), noise=0.0)
    assert all(env.action(a) == a for a in [0, 1, 2] * 100)


@pytest.mark.parametrize("noise", [-0.1, 1.0])
def test_out_of_range_noise_is_refused(noise):
    with pytest.raises(ValueError, match="action noise"):
        NoisyActions(make_env("visual_iq/Catch-v0"), noise=noise)
