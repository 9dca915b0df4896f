"""The shipped Pong agent loads as a small exported checkpoint for the shipped observation settings."""

from pathlib import Path

import numpy as np

from visual_iq.envs import EnvSettings
from visual_iq.agent import load_agent

AGENT = Path("agents/pong_iq.ckpt")


def test_shipped_agent_loads_and_acts():
    assert AGENT.stat().st_size < 10_000_000
    agent = load_agent(AGENT, EnvSettings("Pong"))
    assert agent.settings.game == "Pong" and agent.hyper_parameters["method"] == "iq"
    observations = np.zeros((2, 4, 84, 84), np.uint8)
    actions = agent.act(observations)
    assert actions.shape == (2,) and np.all((0 <= actions) & (actions < 6))
