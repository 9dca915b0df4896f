"""The demonstration format: one compressed ``.npz`` file per episode, no pickle.

Each file holds every 84x84 frame once (not the stacks), compressed as one LZMA stream
(`visual_iq.data.frame_codec`), plus the per-step arrays and a JSON metadata record that includes the
`EnvSettings` the frames were produced with:

================  ===============  ====================================================
key               shape / dtype    meaning
================  ===============  ====================================================
``frames_xz``     (N,) u8          the frames (T+1, H, W) u8 as one xz stream: the newest
                                   frame of each observation o_0 .. o_T
``frames_shape``  (3,) int64       T+1, H, W
``actions``       (T,) int16       action taken in o_t
``rewards``       (T,) float32     reward received after the action
``terminated``    (T,) bool        the game ended (only the last step may be True)
``truncated``     (T,) bool        the episode was cut by a time limit (only the last)
``metadata``      (bytes,) u8      UTF-8 JSON: settings, seed, source, return, ...
================  ===============  ====================================================

Files of format 1 store ``frames`` as a plain array instead (deflated by the zip); both load.

Stacked observations are rebuilt on load: o_t = frames[t-stack+1 .. t], with zero frames before
the episode start, exactly like `FrameStackObservation(padding_type="zero")` in `make_env`.
Files are written atomically (temporary file + rename), so an interrupted write never leaves a
half-written episode and never touches episodes already on disk.
"""

from __future__ import annotations

import datetime
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from visual_iq import __version__
from visual_iq.env.envs import EnvSettings
from visual_iq.data.frame_codec import decode_frames, encode_frames
from visual_iq.errors import DemoError, EnvSettingsError
from visual_iq.files import atomic_write

SOURCES = ("human", "expert", "agent")
FORMAT_VERSION = 2
_ARRAY_SPECS = {  # key -> (dtype kind check, expected ndim)
    "frames": (np.uint8, 3),
    "actions": (np.int16, 1),
    "rewards": (np.float32, 1),
    "terminated": (np.bool_, 1),
    "truncated": (np.bool_, 1),
}


@dataclass(frozen=True)
class Episode:
    """One recorded episode of T steps. Arrays are checked on creation."""

    frames: np.ndarray
    """(T+1, H, W) uint8: the newest frame of observations o_0 .. o_T."""
    actions: np.ndarray
    """(T,) int16: action taken in observation o_t."""
    rewards: np.ndarray
    """(T,) float32: reward received for that action."""
    terminated: np.ndarray
    """(T,) bool: True only on the last step, if the game ended there."""
    truncated: np.ndarray
    """(T,) bool: True only on the last step, if a time limit cut the episode there."""
    settings: EnvSettings
    """The env settings the frames were produced with."""
    source: str = "expert"
    """Who played: ``human``, ``expert`` or ``agent``."""
    seed: int | None = None
    """Seed of the env reset that started the episode."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form JSON-serialisable metadata (e.g. checkpoint path, expert name)."""

    def __post_init__(self) -> None:
        problems = _array_problems(
            {
                "frames": self.frames,
                "actions": self.actions,
                "rewards": self.rewards,
                "terminated": self.terminated,
                "truncated": self.truncated,
            },
            self.settings,
        )
        if self.source not in SOURCES:
            problems.append(f"source must be one of {SOURCES}, got {self.source!r}")
        if problems:
            raise DemoError("invalid episode: " + "; ".join(problems))

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum(dtype=np.float64))

    def observations(self, stack_size: int | None = None) -> np.ndarray:
        """All T+1 stacked observations, (T+1, stack, H, W) uint8, zero-padded at the start.

        ``stack_size`` defaults to the recording's; any other works too (frames are stored once),
        e.g. for an agent trained with another stack size.
        """
        stack = stack_size or self.settings.stack_size
        padded = np.concatenate(
            [np.zeros((stack - 1, *self.frames.shape[1:]), np.uint8), self.frames]
        )
        windows = np.lib.stride_tricks.sliding_window_view(padded, stack, axis=0)
        return np.ascontiguousarray(np.moveaxis(windows, -1, 1))

    def metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "settings": self.settings.to_dict(),
            "source": self.source,
            "seed": self.seed,
            "return": self.episode_return,
            "length": self.length,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "package_version": __version__,
            "extra": self.extra,
        }


class EpisodeBuilder:
    """Accumulates one episode; `finish` returns it as a validated `Episode`."""

    def __init__(self, settings: EnvSettings, first_observation: np.ndarray, seed: int | None) -> None:
        self.settings = settings
        self.seed = seed
        self.frames = [np.asarray(first_observation)[-1].copy()]
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.terminated = False
        self.truncated = False

    def add(self, action: int, reward: float, observation: np.ndarray, terminated: bool, truncated: bool) -> None:
        self.frames.append(np.asarray(observation)[-1].copy())
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        self.terminated, self.truncated = bool(terminated), bool(truncated)

    def finish(self, source: str, extra: dict[str, Any] | None = None) -> Episode:
        steps = len(self.actions)
        terminated = np.zeros(steps, bool)
        truncated = np.zeros(steps, bool)
        if steps:
            terminated[-1], truncated[-1] = self.terminated, self.truncated
        return Episode(
            frames=np.stack(self.frames).astype(np.uint8),
            actions=np.asarray(self.actions, np.int16),
            rewards=np.asarray(self.rewards, np.float32),
            terminated=terminated,
            truncated=truncated,
            settings=self.settings,
            source=source,
            seed=self.seed,
            extra=extra or {},
        )


def _array_problems(arrays: dict[str, np.ndarray], settings: EnvSettings) -> list[str]:
    problems = []
    for key, (dtype, ndim) in _ARRAY_SPECS.items():
        array = arrays[key]
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != ndim:
            shape = getattr(array, "shape", None)
            found = f"{getattr(array, 'dtype', type(array).__name__)} with shape {shape}"
            problems.append(f"{key!r} must be a {ndim}-d {np.dtype(dtype).name} array, got {found}")
    if problems:
        return problems
    steps = len(arrays["actions"])
    if steps == 0:
        problems.append("episode has no steps")
    for key in ("rewards", "terminated", "truncated"):
        if len(arrays[key]) != steps:
            problems.append(f"lengths disagree: {key!r} has {len(arrays[key])}, 'actions' has {steps}")
    if len(arrays["frames"]) != steps + 1:
        problems.append(
            f"lengths disagree: 'frames' has {len(arrays['frames'])}, expected actions + 1 = {steps + 1}"
        )
    size = settings.screen_size
    if arrays["frames"].shape[1:] != (size, size):
        problems.append(f"frames are {arrays['frames'].shape[1:]}, settings say {(size, size)}")
    for key in ("terminated", "truncated"):
        if arrays[key][:-1].any():
            problems.append(f"{key!r} is True before the last step")
    return problems


def episode_filename(index: int) -> str:
    return f"episode_{index:05d}.npz"


def save_episode(episode: Episode, path: str | os.PathLike) -> Path:
    """Write ``episode`` to ``path`` atomically (temporary file in the same directory + rename)."""
    return _write_episode(path, episode, episode.metadata(), encode_frames(episode.frames))


def _write_episode(path: str | os.PathLike, episode: Episode, metadata: dict[str, Any], frames_xz: np.ndarray) -> Path:
    """The episode file, atomically: its frames as the LZMA stream ``frames_xz``, the arrays, the metadata."""
    return atomic_write(path, lambda file: np.savez_compressed(
        file, frames_xz=frames_xz, frames_shape=np.array(episode.frames.shape, dtype=np.int64), actions=episode.actions,
        rewards=episode.rewards, terminated=episode.terminated, truncated=episode.truncated,
        metadata=np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8),
    ))


def recompress_episode(path: str | os.PathLike) -> bool:
    """Rewrite a format-1 episode file in today's format, in place and atomically, with its metadata
    (creation time, source, extras) kept and only ``format_version`` changed. The frames are decoded from
    the new encoding and compared with the old ones before the file is replaced. False if it already was."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "frames" not in data.files:
                return False  # today's format: its frames are not decoded for nothing
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DemoError(f"{path}: corrupt or truncated demo file ({error})") from None
    episode = load_episode(path)  # the whole file checked
    with np.load(path, allow_pickle=False) as data:
        metadata = json.loads(data["metadata"].tobytes().decode("utf-8"))
    metadata["format_version"] = FORMAT_VERSION
    frames_xz = encode_frames(episode.frames)
    if not np.array_equal(decode_frames(frames_xz, tuple(episode.frames.shape)), episode.frames):
        raise DemoError(f"{path}: the frames do not survive re-encoding; the file is left as it was")
    _write_episode(path, episode, metadata, frames_xz)
    return True


def next_episode_path(directory: str | os.PathLike) -> Path:
    """The first unused ``episode_NNNNN.npz`` name in ``directory`` (after the highest present)."""
    directory = Path(directory)
    indices = [
        int(name.stem.split("_")[1])
        for name in directory.glob("episode_*.npz")
        if name.stem.split("_")[1].isdigit()
    ]
    return directory / episode_filename(max(indices, default=-1) + 1)


def load_episode(path: str | os.PathLike, expected: EnvSettings | None = None) -> Episode:
    """Load and validate one episode file; any problem raises `DemoError` naming the file.

    If ``expected`` is given, the file's settings must match it (except the ale-py version,
    which does not change the frames of the same ROM).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = set(data.files) | ({"frames"} if {"frames_xz", "frames_shape"} <= set(data.files) else set())
            missing = sorted((set(_ARRAY_SPECS) | {"metadata"}) - stored)
            if missing:
                raise DemoError(f"{path}: missing keys {missing} (found {sorted(data.files)})")
            arrays = {key: data[key] for key in _ARRAY_SPECS if key != "frames"}
            arrays["frames"] = (data["frames"] if "frames" in data.files
                                else decode_frames(data["frames_xz"], tuple(int(n) for n in data["frames_shape"])))
            raw_metadata = data["metadata"]
    except DemoError:
        raise
    except FileNotFoundError:
        raise DemoError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as error:
        raise DemoError(f"{path}: corrupt or truncated demo file ({error})") from None
    try:
        metadata = json.loads(raw_metadata.tobytes().decode("utf-8"))
        settings = EnvSettings.from_dict(metadata["settings"])
        source, seed = metadata["source"], metadata.get("seed")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, EnvSettingsError) as error:
        raise DemoError(f"{path}: bad metadata ({type(error).__name__}: {error})") from None
    if expected is not None:
        differences = settings.differences(expected, ignore=("ale_py_version",))
        if differences:
            raise DemoError(
                f"{path}: recorded with env settings that do not match the ones asked for: "
                + "; ".join(differences)
            )
    try:
        return Episode(
            **arrays, settings=settings, source=source, seed=seed, extra=metadata.get("extra", {})
        )
    except DemoError as error:
        raise DemoError(f"{path}: {error}") from None


def episode_paths(directory: str | os.PathLike) -> list[Path]:
    """Sorted episode files in ``directory``; a missing or empty directory raises `DemoError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DemoError(f"{directory}: demo directory does not exist")
    paths = sorted(directory.glob("*.npz"))
    if not paths:
        raise DemoError(f"{directory}: no demo files (*.npz) in this directory")
    return paths


def demo_source_name(directories: str | os.PathLike | Sequence[str | os.PathLike]) -> str:
    """How messages name one demo directory or several: ``demos/pong + demos/pong_more``."""
    if isinstance(directories, (str, os.PathLike)):
        return str(directories)
    return " + ".join(str(directory) for directory in directories)


def demo_paths(directories: str | os.PathLike | Sequence[str | os.PathLike],
               limit: int | None = None) -> list[Path]:
    """The episode files of one directory or of several, in that order (the first ``limit``);
    asking for more than there are is a `DemoError`, not a silent shortfall."""
    directories = [directories] if isinstance(directories, (str, os.PathLike)) else list(directories)
    if not directories:
        raise DemoError("no demo directory given")
    paths = [path for directory in directories for path in episode_paths(directory)]
    if limit is not None and not 1 <= limit <= len(paths):
        raise DemoError(f"{demo_source_name(directories)}: asked for {limit} demo episodes, there are {len(paths)}")
    return paths[:limit]


def iter_episodes(
    directories: str | os.PathLike | Sequence[str | os.PathLike],
    expected: EnvSettings | None = None,
    limit: int | None = None,
) -> Iterator[Episode]:
    """`load_episodes` one episode at a time, so that only one episode's frames need be in memory
    (a replay buffer filled from it holds the demos once, not twice). Path problems are raised
    at once, a file's problems when it is reached."""
    paths = demo_paths(directories, limit)
    named = demo_source_name(directories)

    def episodes() -> Iterator[Episode]:
        first: Episode | None = None
        for path in paths:
            episode = load_episode(path, expected)
            if first is not None and episode.settings.differences(first.settings, ("ale_py_version",)):
                raise DemoError(
                    f"{path}: settings differ from the other episodes in {named}: "
                    + "; ".join(episode.settings.differences(first.settings))
                )
            first = first or episode
            yield episode

    return episodes()


def stored_frames(path: str | os.PathLike) -> int:
    """Frames (T+1) in an episode file, read from its small ``actions`` array, not its frames."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return len(data["actions"]) + 1
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as error:
        raise DemoError(f"{path}: corrupt or truncated demo file ({error})") from None


def load_episodes(
    directories: str | os.PathLike | Sequence[str | os.PathLike],
    expected: EnvSettings | None = None,
    limit: int | None = None,
) -> list[Episode]:
    """Load (the first ``limit``) episodes of one directory or of several, in the order given;
    all must share one game and settings.

    Several directories let recordings made apart (other seeds, another session) be trained on
    together without copying files: ``["demos/pong", "demos/pong_more"]`` with ``limit=20`` is the
    first directory's 20 episodes. Asking for more episodes than there are is an error, not a
    silent shortfall.
    """
    return list(iter_episodes(directories, expected, limit))


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """The figures ``visual-iq demos info`` prints: counts, return statistics, game, settings, and how
    the demonstrator acts: each action's share of the steps (index = action) and ``repeat_share``,
    how often an action equals the one before it in its episode (None when no episode has two
    steps, so ``info --json`` stays standard JSON). A demonstrator that mostly idles
    and repeats (smooth) was measured to be far easier to imitate than a jittery one on Pong
    (demos/README.md), so these are the first figures to compare between two sets of demos."""
    returns = np.array([episode.episode_return for episode in episodes], dtype=np.float64)
    settings = episodes[0].settings
    actions = np.concatenate([np.asarray(episode.actions, dtype=np.int64) for episode in episodes])
    repeats = sum(int(np.sum(episode.actions[1:] == episode.actions[:-1])) for episode in episodes)
    pairs = len(actions) - sum(episode.length > 0 for episode in episodes)  # consecutive steps within an episode
    return {
        "episodes": len(episodes),
        "steps": len(actions),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "action_shares": [float(share) for share in np.bincount(actions) / max(len(actions), 1)],
        "repeat_share": repeats / pairs if pairs else None,
        "game": settings.game,
        "sources": sorted({episode.source for episode in episodes}),
        "settings": settings.to_dict(),
    }
