"""Demo directories to and from Minari datasets, offline, under a local datasets path."""

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector.episode_buffer import EpisodeBuffer

from conftest import CATCH_DEMOS

from visual_iq.data.demos import load_episodes
from visual_iq.data.minari_io import from_minari
from visual_iq.env.envs import EnvSettings
from visual_iq.errors import DemoError
from visual_iq.tools.demos import main as demos_main


def test_a_demo_directory_round_trips_through_minari(tmp_path, capsys):
    datasets = tmp_path / "datasets"
    assert demos_main(["to-minari", CATCH_DEMOS, "visual-iq/catch-expert-v0", "--path", str(datasets)]) == 0
    assert demos_main(["from-minari", "visual-iq/catch-expert-v0", str(tmp_path / "back"), "--path", str(datasets)]) == 0
    original, back = load_episodes(CATCH_DEMOS), load_episodes(tmp_path / "back")
    assert len(back) == len(original) == 20
    for before, after in zip(original, back):
        for field in ("frames", "actions", "rewards", "terminated", "truncated"):
            assert np.array_equal(getattr(before, field), getattr(after, field)), field
        assert after.settings == before.settings and after.seed == before.seed
    assert "20 episodes" in capsys.readouterr().out
    assert (datasets / "visual-iq" / "catch-expert-v0").is_dir()  # under --path, not Minari's default


def _foreign_dataset(path, dataset_id, observations, action_space, observation_space, monkeypatch):
    """A dataset another tool wrote: two episodes, no env spec."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    episodes = [EpisodeBuffer(id=index, observations=list(observations), actions=[action_space.sample() for _ in
                              range(len(observations) - 1)], rewards=[1.0] * (len(observations) - 1),
                              terminations=[False] * (len(observations) - 2) + [True],
                              truncations=[False] * (len(observations) - 1)) for index in range(2)]
    minari.create_dataset_from_buffers(dataset_id, episodes, action_space=action_space,
                                       observation_space=observation_space, jpeg_encoding=False)


def test_colour_images_of_another_size_become_frames_for_the_game_given(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    observations = rng.integers(0, 256, (6, 100, 120, 3), dtype=np.uint8)
    _foreign_dataset(tmp_path, "other/colour-v0", observations, gym.spaces.Discrete(6),
                     gym.spaces.Box(0, 255, (100, 120, 3), np.uint8), monkeypatch)
    with pytest.raises(DemoError, match="names no environment: give the game"):
        from_minari("other/colour-v0", tmp_path / "demos")
    assert from_minari("other/colour-v0", tmp_path / "demos", settings=EnvSettings("Pong", sticky_actions=0.0)) == 2
    episode = load_episodes(tmp_path / "demos")[0]
    assert episode.frames.shape == (6, 84, 84) and episode.length == 5 and episode.terminated[-1]
    assert episode.settings.sticky_actions == 0.0 and episode.extra["minari_dataset"] == "other/colour-v0"


@pytest.mark.parametrize("kind", ["continuous actions", "vector observations"])
def test_a_dataset_that_cannot_be_imitated_here_is_one_clear_error(tmp_path, monkeypatch, kind):
    if kind == "continuous actions":
        observations = np.zeros((4, 84, 84), np.uint8)
        spaces = (gym.spaces.Box(-1, 1, (2,), np.float32), gym.spaces.Box(0, 255, (84, 84), np.uint8))
        message = "Box.*only discrete actions"
    else:
        observations = np.zeros((4, 8), np.float32)
        spaces = (gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (8,), np.float32))
        message = r"observations of shape \(8,\) are not images"
    _foreign_dataset(tmp_path, "other/bad-v0", observations, *spaces, monkeypatch)
    with pytest.raises(DemoError, match=f"Minari dataset 'other/bad-v0'.*{message}"):
        from_minari("other/bad-v0", tmp_path / "demos", settings=EnvSettings("Pong"))
    assert not (tmp_path / "demos").exists()
