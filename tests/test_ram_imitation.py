"""benchmarks/ram_imitation.py: the RAM features read the right steps, the planned phase is the expert's."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("ram_imitation", Path("benchmarks/ram_imitation.py"))
ram_imitation = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ram_imitation)


def test_features_hold_this_step_and_the_ones_before_as_bits_and_bytes():
    rams = np.zeros((4, 128), dtype=np.uint8)
    rams[:, 49] = [10, 20, 30, 255]  # ball x per step
    x = ram_imitation.features(rams, [49], steps=3)
    assert x.shape == (4, 3 * 9)
    assert x[:, -3:].tolist() == [[10, 10, 10], [20, 10, 10], [30, 20, 10], [255, 30, 20]]  # bytes: now, 1, 2 back
    assert x[3, :8].tolist() == [1] * 8 and x[0, :8].tolist() == [0, 0, 0, 0, 1, 0, 1, 0]  # bits of 255 and 10
    scaled = ram_imitation.as_input(x)
    assert scaled[3, -3].item() == 1.0 and scaled[3, 0].item() == 1.0  # bytes scaled to [0, 1], bits kept


def test_planned_phase_is_an_approaching_ball_past_plan_from():
    rams = np.zeros((5, 128), dtype=np.uint8)
    rams[:, ram_imitation.PONG.ball_along] = 100
    rams[:, ram_imitation.PONG.ball_towards] = [120, 130, 135, 140, 138]  # approaching until the last step
    assert ram_imitation.planned(rams).tolist() == [False, False, True, True, False]
    rams[3, ram_imitation.PONG.ball_along] = 0  # no ball in play
    assert not ram_imitation.planned(rams)[3]


def test_a_game_replays_from_its_seed_and_one_that_does_not_is_named(tmp_path):
    from visual_iq.data.demos import load_episode
    from visual_iq.env.envs import EnvSettings, make_env
    from visual_iq.errors import DemoError
    from visual_iq.record.recording import record_episodes

    settings = EnvSettings("Pong", max_episode_frames=600)  # sticky actions 0.25, ~150 steps
    rng = np.random.default_rng(0)
    [path] = record_episodes(make_env(settings), lambda _obs: int(rng.integers(6)), tmp_path, episodes=1,
                             source="agent", seed=4, progress=lambda _m: None)
    episode = load_episode(path)
    rams = ram_imitation.replay_rams(episode, str(path))
    assert rams.shape == (episode.length, 128)
    reset = make_env(settings)
    reset.reset(seed=4)
    assert np.array_equal(rams[0], reset.unwrapped.ale.getRAM())  # the RAM before the first step
    shifted = dataclasses.replace(episode, seed=5)  # another game's seed: its rewards or end differ
    with pytest.raises(DemoError, match="does not replay exactly"):
        ram_imitation.replay_rams(shifted, "shifted.npz")
