import dataclasses

import cv2
import gymnasium as gym

import numpy as np
import pytest

from visual_iq.env import envs
from visual_iq.env.envs import (EnvSettings, EnvSettingsError, canonical_game, crop_and_resize, make_env, make_screen_env,
                           make_vector_env)


@pytest.mark.parametrize("name", ["Pong", "pong", "ALE/Pong-v5", "PongNoFrameskip-v4", "Pong-v4"])
def test_game_names_are_normalised(name):
    assert canonical_game(name) == "Pong"


def test_unknown_game_lists_valid_ones():
    with pytest.raises(EnvSettingsError, match="unknown Atari game 'Pongg'.*Breakout.*Pong"):
        make_env("Pongg")


def test_make_env_pipeline():
    env = make_env("ALE/Breakout-v5", sticky_actions=0.0)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (4, 84, 84) and observation.dtype == np.uint8
    assert env.settings == EnvSettings("Breakout", sticky_actions=0.0)
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    assert env.action_space.n == 4
    # zero padding: the first observation has only one real frame
    assert not observation[:3].any() and observation[3].any()
    assert make_env("Pong").unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)


def test_settings_round_trip_and_differences():
    settings = EnvSettings("Pong")
    assert EnvSettings.from_dict(settings.to_dict()) == settings
    other = dataclasses.replace(settings, sticky_actions=0.0)
    assert settings.differences(other) == ["sticky_actions: 0.25 != 0.0"]
    with pytest.raises(EnvSettingsError, match="unknown env settings fields"):
        EnvSettings.from_dict({**settings.to_dict(), "colour": True})
    with pytest.raises(EnvSettingsError, match="sticky_actions"):
        EnvSettings("Pong", sticky_actions=1.5)


@pytest.mark.parametrize("game,crop", [("Pong", {}), ("Breakout", {}), ("Pong", {"crop_top": 34, "crop_bottom": 16})],
                         ids=["Pong", "Breakout", "Pong-cropped"])
def test_vector_env_matches_make_env(game, crop):
    """Same seed and actions, no sticky actions and no no-op starts: identical observations."""
    settings = EnvSettings(game, sticky_actions=0.0, noop_max=0, **crop)
    env, vector_env = make_env(settings), make_vector_env(settings, num_envs=1)
    observation, _ = env.reset(seed=3)
    vector_observation, _ = vector_env.reset(seed=3)
    assert np.array_equal(observation, vector_observation[0])
    rng = np.random.default_rng(0)
    rewards = 0.0
    for _ in range(600):
        action = int(rng.integers(env.action_space.n))
        observation, reward, terminated, truncated, _ = env.step(action)
        vector_observation, vector_reward, vector_terminated, vector_truncated, _ = vector_env.step(
            np.array([action])
        )
        assert np.array_equal(observation, vector_observation[0])
        assert reward == vector_reward[0]
        assert terminated == vector_terminated[0] and truncated == vector_truncated[0]
        rewards += abs(reward)
        if terminated or truncated:
            break
    assert rewards > 0  # the comparison covered steps with rewards
    vector_env.close()


class _ScriptedStacks(gym.vector.VectorEnv):
    """A vector env that returns the full-size stacks it is given, one array per reset/step."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, stacks: list[np.ndarray]) -> None:
        self.stacks = iter(stacks)
        self.num_envs = len(stacks[0])
        self.single_observation_space = gym.spaces.Box(0, 255, stacks[0].shape[1:], np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, stacks[0].shape, np.uint8)

    def reset(self, *, seed=None, options=None):
        return next(self.stacks), {}

    def step(self, actions):
        zeros = np.zeros(self.num_envs)
        return next(self.stacks), zeros, zeros.astype(bool), zeros.astype(bool), {}


def test_vector_crop_reuses_resized_frames_exactly(monkeypatch):
    """Stacks that shift by a frame reuse their resized frames; a reset (zero padding) or any other
    stack is resized whole; either way the output is `crop_and_resize` of the full-size stack."""
    settings = EnvSettings("Pong", crop_top=34, crop_bottom=16)
    rng = np.random.default_rng(0)
    new_frame = lambda: rng.integers(0, 256, (210, 160), np.uint8)  # noqa: E731
    stacks = [np.stack([np.stack([new_frame() for _ in range(4)]) for _ in range(3)])]
    for step in range(1, 7):
        stack = np.concatenate([stacks[-1][:, 1:], np.stack([new_frame() for _ in range(3)])[:, None]], axis=1)
        if step == 3:
            stack[1, :3] = 0  # env 1 resets: zero padding before its first frame
        if step == 5:
            stack[2] = rng.integers(0, 256, (4, 210, 160), np.uint8)  # no relation to the previous stack
        stacks.append(stack)
    resized_frames = []

    def counting(frames, settings):
        resized_frames.append(frames[..., 0, 0].size)
        return crop_and_resize(frames, settings)

    monkeypatch.setattr(envs, "crop_and_resize", counting)
    env = envs._VectorCrop(_ScriptedStacks(stacks), settings)
    outputs = [env.reset()[0]] + [env.step(np.zeros(3, int))[0] for _ in range(6)]
    for output, stack in zip(outputs, stacks):
        assert np.array_equal(output, crop_and_resize(stack, settings))
    # 12 frames at the reset, then 3 per step, plus 3 for env 1's reset stack and 3 for env 2's jump
    assert sum(resized_frames) == 12 + 6 * 3 + 3 + 3


def test_crop_keeps_the_playfield_at_a_finer_scale():
    settings = EnvSettings("Pong", sticky_actions=0.0, noop_max=0, crop_top=34, crop_bottom=16)
    screen, _ = make_screen_env(settings).reset(seed=0)
    frame = make_env(settings).reset(seed=0)[0][-1]
    assert screen.shape == (210, 160) and frame.shape == (84, 84)
    assert np.array_equal(frame, cv2.resize(screen[34:194], (84, 84), interpolation=cv2.INTER_AREA))
    # the walls (screen rows 24..33 and 194..209, another gray than the field) are gone: rows 0 and 83 are field
    field = np.median(screen[100])
    assert abs(np.median(screen[28]) - field) > 20 and abs(np.median(screen[200]) - field) > 20
    assert np.median(frame[0]) == np.median(frame[83]) == field
    with pytest.raises(EnvSettingsError, match="crop_top and crop_bottom must be >= 0"):
        EnvSettings("Pong", crop_top=-1)
    with pytest.raises(EnvSettingsError, match="leave 60 of Pong's 210 screen rows, fewer than screen_size 84"):
        make_env(EnvSettings("Pong", crop_top=100, crop_bottom=50))
    with pytest.raises(EnvSettingsError, match="fewer than screen_size 84"):
        make_vector_env(EnvSettings("Pong", crop_top=100, crop_bottom=50), 1)
    with pytest.raises(EnvSettingsError, match="for Atari screens"):
        EnvSettings("visual_iq/Catch-v0", crop_top=2)


@pytest.mark.parametrize("vector", [False, True], ids=["make_env", "make_vector_env"])
def test_terminal_on_life_loss_ends_the_episode_at_the_first_lost_life(vector):
    settings = EnvSettings("Breakout", sticky_actions=0.0, noop_max=0, terminal_on_life_loss=True)
    env = make_vector_env(settings, 1) if vector else make_env(settings)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(2000):
        action = rng.integers(4, size=1) if vector else int(rng.integers(4))
        _, _, terminated, _, info = env.step(action)
        if np.any(terminated):
            break
    assert np.any(terminated) and np.all(info["lives"] == 4), (step, info["lives"])
    env.close()
