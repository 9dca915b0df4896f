"""Decoded demo frames in a cache directory, memory-mapped, so that runs side by side share one copy.

The demo files are compressed: 120 Pong demos decode to ~6.3 GB of frames, 180 to ~9.5 GB, and
every training process holds its own decoded copy, so two runs on a 24 GiB machine stop fitting
at ~150 demos. With a cache directory the expert replay is decoded once into uncompressed ``.npy``
files there and memory-mapped read-only: the processes reading it share the operating system's
page cache (one copy in RAM however many runs read it), and a later start decodes nothing.

An entry's name is a hash of the episode files' resolved paths, sizes and modification times
(and of this format's version), so a re-recorded or edited demo file makes a new entry; stale
entries are never read, only left on disk (delete the directory to reclaim the space). An entry is
written under a temporary name and renamed into place once complete, so a run that stops while
writing leaves no half entry, and two runs building the same entry at once both end up reading one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from visual_iq.data.buffer import FrameReplayBuffer

FORMAT_VERSION = 1
SMALL_ARRAYS = ("episode_steps", "actions", "rewards", "terminated", "truncated")


def cache_key(paths: Sequence[Path]) -> str:
    """A name for the decoded replay of these episode files, in this order."""
    stats = [(Path(path).resolve(), os.stat(path)) for path in paths]
    described = [FORMAT_VERSION] + [[str(path), stat.st_size, stat.st_mtime_ns] for path, stat in stats]
    return "demos-" + hashlib.sha256(json.dumps(described).encode()).hexdigest()[:24]


def cached_replay(paths: Sequence[Path], cache_dir: str | os.PathLike, stack_size: int,
                  build: Callable[[np.ndarray], FrameReplayBuffer], total_frames: int,
                  frame_shape: tuple[int, int]) -> FrameReplayBuffer:
    """The expert replay of ``paths`` from ``cache_dir``, building the entry first if it is missing.

    ``build(frames)`` must fill a replay whose frames are the given (1, total_frames, H, W) array
    (the entry's memory-mapped file while it is written).
    """
    entry = Path(cache_dir) / cache_key(paths)
    if not (entry / "frames.npy").is_file():
        _write_entry(entry, build, total_frames, frame_shape)
    frames = np.load(entry / "frames.npy", mmap_mode="r")
    if frames.shape != (1, total_frames) + tuple(frame_shape):
        raise ValueError(f"{entry}: cached frames are {frames.shape}, the demos have {total_frames} frames "
                         f"of {frame_shape}: delete this entry")
    replay = FrameReplayBuffer(total_frames, 1, frame_shape, stack_size, frames=frames)
    with np.load(entry / "small.npz", allow_pickle=False) as small:
        for name in SMALL_ARRAYS:
            getattr(replay, name)[...] = small[name]
    replay.written = total_frames
    return replay


def _write_entry(entry: Path, build: Callable[[np.ndarray], FrameReplayBuffer], total_frames: int,
                 frame_shape: tuple[int, int]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        frames = np.lib.format.open_memmap(partial / "frames.npy", mode="w+", dtype=np.uint8,
                                           shape=(1, total_frames) + tuple(frame_shape))
        replay = build(frames)
        frames.flush()
        np.savez(partial / "small.npz", **{name: getattr(replay, name) for name in SMALL_ARRAYS})
        del frames, replay
        try:
            partial.rename(entry)
        except OSError:  # another run put the same entry in place first: read that one
            if not (entry / "frames.npy").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
