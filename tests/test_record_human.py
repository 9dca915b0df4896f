"""The keyboard recorder, driven headless by synthetic pygame key events."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pygame

from visual_iq.data.demos import load_episodes
from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.record.recorder import record_human

# 480 emulator frames = 120 agent steps, so each episode ends by truncation quickly.
SETTINGS = EnvSettings("Pong", sticky_actions=0.0, noop_max=0, max_episode_frames=480)


def test_saved_actions_match_keys_pressed(tmp_path):
    press, release = 10, 40  # hold 'd' (Pong: RIGHT = paddle up, action 2) over these steps

    def on_step(step: int) -> None:
        if step == press:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_d))
        if step == release:
            pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_d))

    written = record_human(SETTINGS, tmp_path, episodes=1, seed=7, fps=1000, on_step=on_step)

    assert len(written) == 1
    [episode] = load_episodes(tmp_path, SETTINGS)
    assert episode.source == "human" and episode.seed == 7
    assert episode.truncated[-1] and not episode.terminated.any()
    pressed = np.flatnonzero(episode.actions == 2)
    assert len(pressed) > 20, episode.actions
    # Events posted after step k are seen before step k + 1 is taken.
    assert pressed.min() == press and pressed.max() == release - 1
    assert set(np.unique(episode.actions)) == {0, 2}

    # What was saved is exactly what make_env gives for the same seed and actions.
    env = make_env(SETTINGS)
    observation, _ = env.reset(seed=7)
    observations = episode.observations()
    assert np.array_equal(observations[0], observation)
    for t, action in enumerate(episode.actions):
        observation, reward, *_ = env.step(int(action))
        assert np.array_equal(observations[t + 1], observation)
        assert reward == episode.rewards[t]


def test_quit_keeps_finished_episodes(tmp_path):
    def on_step(step: int) -> None:
        if step == 150:  # the first episode (120 steps) is finished, the second is not
            pygame.event.post(pygame.event.Event(pygame.QUIT))

    written = record_human(SETTINGS, tmp_path, seed=0, fps=1000, on_step=on_step)
    assert len(written) == 1
    assert len(load_episodes(tmp_path)) == 1
    assert not list(tmp_path.glob("*.tmp"))
