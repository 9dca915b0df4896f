"""Recorded games replayed from their seed and actions: every step checked against what was recorded, and
their frames stored again under other frame settings (a crop of the playfield, another size)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from visual_iq.data.demos import Episode, episode_paths, load_episode, save_episode
from visual_iq.env.envs import FRAME_FIELDS, EnvSettings, crop_and_resize, make_screen_env
from visual_iq.errors import DemoError
from visual_iq.record.recorder import _progress


def rerender_episode(episode: Episode, settings: EnvSettings, where: str = "episode") -> Episode:
    """The same game seen through other frame settings (``crop_*``, ``screen_size``): its actions
    replayed from its seed in `make_screen_env`, every stored frame checked on the way.

    Only frame settings may differ from the recording's. A game that does not replay exactly (an
    expert that planned in the env's own emulator moved its random state, see ``--deterministic-plans``)
    raises `DemoError` naming ``where`` and the first step that differs; nothing is returned then.
    """
    changed = [d for d in episode.settings.differences(settings) if d.split(":")[0] not in FRAME_FIELDS]
    if changed:
        raise DemoError(f"{where}: only frame settings can be re-rendered, these differ: " + "; ".join(changed))
    frames = []
    for step, screen, _env in replay(episode, where):
        if not np.array_equal(crop_and_resize(screen, episode.settings), episode.frames[step]):
            raise DemoError(f"{where}: replaying its actions from seed {episode.seed} gives another frame at "
                            f"step {step} of {episode.length}: the game does not replay exactly")
        frames.append(crop_and_resize(screen, settings))
    return dataclasses.replace(episode, frames=np.stack(frames), settings=settings,
                               extra={**episode.extra, "rerendered_from": episode.settings.to_dict()})


def replay(episode: Episode, where: str = "episode") -> Iterator[tuple[int, np.ndarray, gym.Env]]:
    """Replay ``episode``'s actions from its seed in `make_screen_env`: yields ``(step, screen, env)``
    before each step and after the last one (step = length), the env's emulator then in that state.
    A game with no seed, or whose rewards or end differ from the recording's (an expert that planned in
    the env's own emulator moved its state, see ``--deterministic-plans``), raises `DemoError` naming ``where``.
    """
    if episode.seed is None:
        raise DemoError(f"{where}: has no seed, so its game cannot be replayed")
    # The stored actions are the executed ones, FIREs pressed for the agent included (`visual_iq.env.fire`),
    # so the game replays without that wrapper, whichever rule it was recorded under.
    env = make_screen_env(episode.settings)
    try:
        screen, _ = env.reset(seed=episode.seed)
        for step in range(episode.length + 1):
            yield step, screen, env
            if step == episode.length:
                break
            screen, reward, terminated, truncated, _ = env.step(int(episode.actions[step]))
            if reward != episode.rewards[step] or (terminated or truncated) != (step == episode.length - 1):
                raise DemoError(f"{where}: replaying its actions from seed {episode.seed} gives another reward or "
                                f"episode end at step {step} of {episode.length}: the game does not replay exactly")
    finally:
        env.close()


def rerender_demos(source: str | os.PathLike, out: str | os.PathLike, settings_changes: dict[str, Any],
                   progress: Callable[[str], None] = _progress) -> list[Path]:
    """`rerender_episode` every episode of directory ``source`` into ``out`` under the same file
    names, with ``settings_changes`` (e.g. ``{"crop_top": 34, "crop_bottom": 16}``) applied to its
    settings. Episodes already in ``out`` are kept (an interrupted run resumes); each is written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in episode_paths(source):
        target = out / path.name
        if not target.exists():
            episode = load_episode(path)
            settings = dataclasses.replace(episode.settings, **settings_changes)
            save_episode(rerender_episode(episode, settings, where=str(path)), target)
            progress(f"{target}: {episode.length} steps re-rendered")
        written.append(target)
    return written
