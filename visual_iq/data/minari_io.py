"""Demo directories to and from Minari datasets (the Farama Foundation's offline-RL format).

`to_minari` writes a directory's episodes as a Minari dataset: each observation is the episode's
84x84 grey frame at that step, stored losslessly (not JPEG), N+1 of them for N actions, with the
rewards, terminations and truncations as recorded, the episode's reset seed, and the env settings
in the dataset's description, so that `from_minari` gets the same demos back. `from_minari` reads
any dataset with discrete actions and image observations: grey (H, W), colour (H, W, 3) or stacks
(S, H, W) of either size, each turned into the project's frames (grey, resized to ``screen_size``;
the newest frame of a stack); the game and protocol come from the description visual-iq wrote or
else from the dataset's env spec. Anything else is one `DemoError` naming the dataset.
Needs the ``minari`` extra (``pip install "visual-iq[minari]"``); datasets live under ``path``, or
Minari's own ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import cv2
import gymnasium as gym
import numpy as np

from visual_iq.data.demos import Episode, iter_episodes, next_episode_path, save_episode
from visual_iq.env.envs import EnvSettings, canonical_game
from visual_iq.env.envs import num_actions as game_actions
from visual_iq.errors import DemoError, EnvSettingsError

SETTINGS_MARK = "visual-iq env settings: "
"""Where the description of a dataset visual-iq wrote holds its env settings (one JSON line)."""


def _minari() -> Any:
    try:
        import minari
    except ImportError:
        raise DemoError('Minari is not installed: pip install "visual-iq[minari]"') from None
    return minari


@contextmanager
def _datasets_path(path: str | os.PathLike | None) -> Iterator[None]:
    """Minari reads its datasets directory from the environment: set it for the call."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    if path is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if path is not None:
            if before is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = before


def to_minari(directory: str | os.PathLike, dataset_id: str, path: str | os.PathLike | None = None) -> int:
    """Write the episodes of demo ``directory`` as Minari dataset ``dataset_id``; returns their count."""
    minari = _minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    buffers, settings, num_actions = [], None, 0
    for index, episode in enumerate(iter_episodes(directory)):
        settings = settings or episode.settings
        num_actions = max(num_actions, int(episode.actions.max(initial=0)) + 1)
        buffers.append(EpisodeBuffer(id=index, seed=episode.seed, observations=list(episode.frames),
                                     actions=episode.actions.astype(np.int64).tolist(),
                                     rewards=episode.rewards.astype(np.float64).tolist(),
                                     terminations=episode.terminated.tolist(), truncations=episode.truncated.tolist()))
    assert settings is not None  # iter_episodes refuses an empty directory
    if settings.is_atari:
        num_actions = game_actions(settings)
    size = settings.screen_size
    description = (f"Demonstrations of {settings.game} recorded with visual-iq from {directory}: one {size}x{size} "
                   f"grey frame per observation (stack them to observe).\n{SETTINGS_MARK}{json.dumps(settings.to_dict())}")
    with _datasets_path(path):
        try:
            minari.create_dataset_from_buffers(
                dataset_id, buffers, observation_space=gym.spaces.Box(0, 255, (size, size), np.uint8),
                action_space=gym.spaces.Discrete(num_actions), algorithm_name="visual-iq demos",
                description=description, data_format="hdf5", jpeg_encoding=False)
        except ValueError as error:
            raise DemoError(f"Minari dataset {dataset_id!r}: {error}") from None
    return len(buffers)


def from_minari(dataset_id: str, directory: str | os.PathLike, path: str | os.PathLike | None = None,
                settings: EnvSettings | None = None) -> int:
    """Write the episodes of Minari dataset ``dataset_id`` into demo ``directory``; returns their count.

    ``settings``: the env settings the demos are for, where the dataset does not say (a dataset
    visual-iq wrote carries its own; another one names its game through its env spec)."""
    minari = _minari()
    with _datasets_path(path):
        try:
            dataset = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError) as error:
            raise DemoError(f"Minari dataset {dataset_id!r}: cannot be loaded ({error})") from None
        where = f"Minari dataset {dataset_id!r}"
        if not isinstance(dataset.action_space, gym.spaces.Discrete):
            raise DemoError(f"{where} has {dataset.action_space} actions: only discrete actions can be imitated here")
        settings = settings or _dataset_settings(dataset, where)
        count = 0
        indices = dataset.episode_indices
        seeds = [metadata.get("seed") for metadata in dataset.storage.get_episode_metadata(indices)]
        for episode_data, seed in zip(dataset.iterate_episodes(indices), seeds):
            frames = as_frames(np.asarray(episode_data.observations), settings.screen_size, where)
            ends = len(episode_data.actions)
            episode = Episode(frames=frames, actions=np.asarray(episode_data.actions, np.int16).reshape(ends),
                              rewards=np.asarray(episode_data.rewards, np.float32),
                              terminated=np.asarray(episode_data.terminations, bool),
                              truncated=np.asarray(episode_data.truncations, bool), settings=settings,
                              source="expert", seed=seed, extra={"minari_dataset": dataset_id})
            save_episode(episode, next_episode_path(directory))
            count += 1
    return count


def as_frames(observations: np.ndarray, screen_size: int, where: str) -> np.ndarray:
    """(T+1, ...) image observations as (T+1, screen_size, screen_size) grey uint8 frames: grey (H, W),
    colour (H, W, 3) or a stack (S, H, W) of grey frames (its newest frame)."""
    if observations.ndim == 4 and observations.shape[-1] == 3:
        observations = np.stack([cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY) for image in observations])
    elif observations.ndim == 4 and observations.shape[1] <= 16 < min(observations.shape[2:]):
        observations = observations[:, -1]
    if observations.ndim != 3 or min(observations.shape[1:]) < 16:
        raise DemoError(f"{where}: observations of shape {observations.shape[1:]} are not images "
                        "(grey (H, W), colour (H, W, 3) or a stack (S, H, W) of grey frames)")
    if observations.dtype != np.uint8:
        raise DemoError(f"{where}: observations are {observations.dtype}, not uint8 pixels")
    if observations.shape[1:] == (screen_size, screen_size):
        return np.ascontiguousarray(observations)
    size = (screen_size, screen_size)
    return np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in observations])


def _dataset_settings(dataset: Any, where: str) -> EnvSettings:
    """The env settings visual-iq wrote into the description, or the game and protocol of the env spec."""
    description = dataset.storage.metadata.get("description") or ""
    for line in description.splitlines():
        if line.startswith(SETTINGS_MARK):
            return EnvSettings.from_dict(json.loads(line[len(SETTINGS_MARK):]))
    spec = dataset.env_spec
    if spec is None:
        raise DemoError(f"{where} names no environment: give the game (--game) its demos are for")
    try:
        game = canonical_game(spec.id)
    except EnvSettingsError as error:
        raise DemoError(f"{where}: {error}") from None
    kwargs = spec.kwargs or {}
    default_sticky = 0.0 if "NoFrameskip" in spec.id or spec.id.endswith("-v4") else 0.25
    return EnvSettings(game, sticky_actions=float(kwargs.get("repeat_action_probability", default_sticky)))
