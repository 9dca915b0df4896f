"""The one Atari preprocessing pipeline that recording, training and evaluation share.

`EnvSettings` is the small record of everything that defines an observation. It is saved with
every demo and every checkpoint so that a mismatch between data, model and env is caught.
`make_env` builds the python pipeline (ALE v5 with ``frameskip=1`` + gymnasium's
`AtariPreprocessing` + `FrameStackObservation`); `make_vector_env` builds ale-py's C++
`AtariVectorEnv` with every setting that differs from its defaults set to match. With
``crop_top``/``crop_bottom`` both take full-size screens and `crop_and_resize` them, so the two
pipelines stay identical.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Any

import ale_py
import cv2
import gymnasium as gym
import numpy as np
import torch
from ale_py.registration import rom_id_to_name
from ale_py.roms import get_all_rom_ids
from ale_py.vector_env import AtariVectorEnv
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from visual_iq.errors import EnvSettingsError
from visual_iq.env.fire import FireOnNewLife, VectorFireOnNewLife
from visual_iq.env.lives import VectorLifeLossEnds

gym.register_envs(ale_py)
# Pixel envs of our own (tests, examples; registered by the package): they emit (H, W) uint8
# frames and are only stacked.
CUSTOM_GAMES = ("visual_iq/Catch-v0",)
STICKY_ACTIONS = 0.25
"""Default sticky-action probability: ALE v5's, used by recording, training and evaluation."""
NOOP_MAX = 30
"""Default maximum of random no-ops after a reset."""
ATARI_SCREEN = (210, 160)
"""Height and width of every Atari 2600 screen in ALE."""
FRAME_FIELDS = ("game", "frame_skip", "screen_size", "crop_top", "crop_bottom")
"""Settings that change the frames themselves: demos must match them."""
OBSERVATION_FIELDS = FRAME_FIELDS + ("stack_size",)
"""Settings that change what the network sees: a checkpoint must match them."""
PROTOCOL_FIELDS = ("sticky_actions",)
"""Settings that change how the game responds to actions: training on demos, or starting from a network,
of the other protocol (sticky actions, or none as in the IQ-Learn paper) is refused."""


def _game_names() -> dict[str, str]:
    """CamelCase game name (e.g. ``Pong``) -> ale-py ROM id (e.g. ``pong``), for every shipped ROM."""
    return {rom_id_to_name(rom_id): rom_id for rom_id in get_all_rom_ids()}


def canonical_game(game: str) -> str:
    """Normalise ``Pong``, ``pong``, ``ALE/Pong-v5`` or ``PongNoFrameskip-v4`` to ``Pong``.

    Raises `EnvSettingsError` listing the valid games when the name is unknown.
    """
    name = game.strip()
    if name in CUSTOM_GAMES:
        return name
    name = re.sub(r"^ALE/", "", name)
    name = re.sub(r"-v\d+$", "", name)
    name = re.sub(r"(NoFrameskip|Deterministic)$", "", name)
    games = _game_names()
    if name in games:
        return name
    by_lower = {key.lower(): key for key in games}
    by_lower.update({rom_id.replace("_", ""): key for key, rom_id in games.items()})
    key = name.lower().replace("_", "")
    if key in by_lower:
        return by_lower[key]
    raise EnvSettingsError(
        f"unknown Atari game {game!r}; valid games are: {', '.join(sorted(games) + list(CUSTOM_GAMES))}"
    )


@dataclass(frozen=True)
class EnvSettings:
    """Everything that defines what an observation looks like. Saved with demos and checkpoints."""

    game: str = "Pong"
    """Game name as accepted by `canonical_game` (stored in canonical form, e.g. ``Pong``)."""
    frame_skip: int = 4
    """Emulator frames per agent step; the last two are max-pooled."""
    screen_size: int = 84
    """Observation frames are ``screen_size`` x ``screen_size``."""
    crop_top: int = 0
    """Screen rows dropped above the playfield before resizing (Pong: 34, the score and top wall)."""
    crop_bottom: int = 0
    """Screen rows dropped below it (Pong: 16, the bottom wall). Cropping Pong's 210 x 160 screen to
    its 160 x 160 playfield gives the 84 rows 1.9 screen rows each instead of 2.5."""
    stack_size: int = 4
    """Frames per observation; the first steps of an episode are padded with zero frames."""
    sticky_actions: float = STICKY_ACTIONS
    """Probability that the emulator repeats the previous action on a frame (ALE v5 default)."""
    noop_max: int = NOOP_MAX
    """Up to this many no-op steps after each reset (0 disables)."""
    terminal_on_life_loss: bool = False
    """End training episodes when a life is lost (a training signal: evaluation plays whole games)."""
    clip_rewards: bool = False
    """Train on the sign of each reward, -1, 0 or +1 (a training signal: evaluation scores the game's own
    points). With ``terminal_on_life_loss``, ``fire_on_new_life``, no sticky actions and no-op starts this is
    the protocol of DQN and of the IQ-Learn paper's Atari experiments."""
    fire_on_new_life: bool = False
    """Press FIRE for the agent on the first step of every episode and every life after a lost one
    (`visual_iq.env.fire`; for games that wait for it, e.g. Breakout's ball). Off matches the real game."""
    max_episode_frames: int = 108_000
    """Episodes are truncated after this many emulator frames (30 minutes of play)."""
    ale_py_version: str = ale_py.__version__
    """ale-py version the observations were produced with."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "game", canonical_game(self.game))
        if not 0.0 <= self.sticky_actions <= 1.0:
            raise EnvSettingsError(f"sticky_actions must be in [0, 1], got {self.sticky_actions}")
        for name in ("frame_skip", "screen_size", "stack_size", "max_episode_frames"):
            if getattr(self, name) < 1:
                raise EnvSettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noop_max < 0:
            raise EnvSettingsError(f"noop_max must be >= 0, got {self.noop_max}")
        if self.crop_top < 0 or self.crop_bottom < 0:
            raise EnvSettingsError(f"crop_top and crop_bottom must be >= 0, got {self.crop_top}, {self.crop_bottom}")
        if self.cropped and not self.is_atari:
            raise EnvSettingsError(f"crop_top / crop_bottom are for Atari screens, not {self.game}")
        rows = ATARI_SCREEN[0] - self.crop_top - self.crop_bottom
        if self.cropped and rows < self.screen_size:
            raise EnvSettingsError(
                f"crop_top {self.crop_top} + crop_bottom {self.crop_bottom} leave {rows} of {self.game}'s "
                f"{ATARI_SCREEN[0]} screen rows, fewer than screen_size {self.screen_size}")
        if self.fire_on_new_life and not self.is_atari:
            raise EnvSettingsError(f"fire_on_new_life is for Atari games with lives, not {self.game}")

    @property
    def is_atari(self) -> bool:
        return self.game not in CUSTOM_GAMES

    @property
    def cropped(self) -> bool:
        return bool(self.crop_top or self.crop_bottom)

    @property
    def env_id(self) -> str:
        """The gymnasium id of the underlying ALE v5 env, e.g. ``ALE/Pong-v5``."""
        return f"ALE/{self.game}-v5" if self.is_atari else self.game

    @property
    def rom_id(self) -> str:
        """The ale-py ROM id, e.g. ``pong``."""
        return _game_names()[self.game]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def for_evaluation(self) -> "EnvSettings":
        """These settings without the training signals: whole games (every life) and the game's own score."""
        return dataclasses.replace(self, terminal_on_life_loss=False, clip_rewards=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnvSettings":
        """Rebuild settings saved by `to_dict`; unknown or badly typed fields raise `EnvSettingsError`.

        Files of earlier versions carry ``grayscale: true`` (frames are always grayscale); it is accepted.
        """
        data = dict(data)
        if data.pop("grayscale", True) is not True:
            raise EnvSettingsError("only grayscale observations are supported, these settings say grayscale: false")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise EnvSettingsError(f"unknown env settings fields: {unknown}")
        try:
            return cls(**data)
        except TypeError as error:
            raise EnvSettingsError(f"bad env settings {data}: {error}") from None

    def differences(self, other: "EnvSettings", ignore: tuple[str, ...] = ()) -> list[str]:
        """Human-readable list of fields that differ, e.g. ``["sticky_actions: 0.25 != 0.0"]``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{key}: {mine[key]!r} != {theirs[key]!r}"
            for key in mine
            if key not in ignore and mine[key] != theirs[key]
        ]


def make_env(
    game: str | EnvSettings = "Pong",
    *,
    sticky_actions: float | None = None,
    render_mode: str | None = None,
    **overrides: Any,
) -> gym.Env:
    """The single preprocessing pipeline: ALE v5 (frameskip 1) + AtariPreprocessing + crop/resize + frame stack.

    ``game`` is a name (``Pong``, ``ALE/Pong-v5``, ``PongNoFrameskip-v4``) or full `EnvSettings`;
    keyword overrides (``sticky_actions``, ``noop_max``, ...) replace fields of the settings.
    Observations are uint8 arrays of shape ``(stack_size, 84, 84)``. The settings used are at
    ``env.settings`` (the outermost wrapper's attribute).
    """
    settings = game if isinstance(game, EnvSettings) else EnvSettings(game=game)
    if sticky_actions is not None:
        overrides["sticky_actions"] = sticky_actions
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    if not settings.is_atari:
        env = gym.make(settings.env_id, render_mode=render_mode)
        env = FrameStackObservation(env, stack_size=settings.stack_size, padding_type="zero")
        env.settings = settings  # type: ignore[attr-defined]
        return env
    env = make_screen_env(settings, render_mode=render_mode)
    env = gym.wrappers.TransformObservation(  # (also for no crop: AtariPreprocessing's own resize)
        env, functools.partial(crop_and_resize, settings=settings),
        gym.spaces.Box(0, 255, (settings.screen_size, settings.screen_size), np.uint8))
    env = FrameStackObservation(env, stack_size=settings.stack_size, padding_type="zero")
    if settings.clip_rewards:
        env = gym.wrappers.TransformReward(env, lambda reward: float(np.sign(reward)))
    if settings.fire_on_new_life:
        env = FireOnNewLife(env, fire_action(settings.env_id))
    env.settings = settings  # type: ignore[attr-defined]
    return env


def make_screen_env(settings: EnvSettings, render_mode: str | None = None) -> gym.Env:
    """`make_env` before cropping, resizing and stacking: ALE v5 (frameskip 1) + AtariPreprocessing
    at the full screen size, whose observations are the max-pooled (210, 160) gray screens.

    The frames of any ``crop_*`` and ``screen_size`` are `crop_and_resize` of these screens, so one
    game replayed here gives its frames under several settings at once (`visual_iq.record.replay.rerender_episode`).
    """
    env = gym.make(
        settings.env_id,
        frameskip=1,
        repeat_action_probability=settings.sticky_actions,
        max_num_frames_per_episode=settings.max_episode_frames,
        full_action_space=False,
        render_mode=render_mode,
    )
    height, width = env.observation_space.shape[:2]
    return AtariPreprocessing(
        env,
        noop_max=settings.noop_max,
        frame_skip=settings.frame_skip,
        screen_size=(width, height),
        terminal_on_life_loss=settings.terminal_on_life_loss,
        grayscale_obs=True,
        scale_obs=False,
    )


def crop_and_resize(frames: np.ndarray, settings: EnvSettings) -> np.ndarray:
    """Full-size gray screens (..., H, W) -> their rows ``crop_top:H-crop_bottom`` resized to
    ``screen_size`` squared with area interpolation (what `AtariPreprocessing` resizes with)."""
    cropped = frames[..., settings.crop_top: frames.shape[-2] - settings.crop_bottom, :]
    size = (settings.screen_size, settings.screen_size)
    flat = cropped.reshape(-1, *cropped.shape[-2:])
    out = np.empty((len(flat), *size), np.uint8)
    for index, frame in enumerate(flat):
        cv2.resize(frame, size, dst=out[index], interpolation=cv2.INTER_AREA)
    return out.reshape(*frames.shape[:-2], *size)


class _VectorCrop(gym.vector.VectorObservationWrapper):
    """Crop and resize the full-size stacks of `AtariVectorEnv` (`crop_and_resize`).

    A step shifts every stack by one frame, so where a stack's older frames are the ones the env's
    previous stack ended with, their resized copies are reused and only the newest frame is resized
    (a reset's zero padding does not match and is resized whole). Same output, ~4x fewer resizes.
    """

    def __init__(self, env: gym.vector.VectorEnv, settings: EnvSettings) -> None:
        super().__init__(env)
        self.settings = settings
        shape = (*env.single_observation_space.shape[:-2], settings.screen_size, settings.screen_size)
        self.single_observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (env.num_envs, *shape), np.uint8)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (full-size, resized) stacks

    def observations(self, observations: np.ndarray) -> np.ndarray:
        resized = np.empty((len(observations), *self.single_observation_space.shape), np.uint8)
        for index, stack in enumerate(observations):
            if self._previous is not None and np.array_equal(stack[:-1], self._previous[0][index, 1:]):
                resized[index, :-1] = self._previous[1][index, 1:]
                resized[index, -1] = crop_and_resize(stack[-1], self.settings)
            else:
                resized[index] = crop_and_resize(stack, self.settings)
        self._previous = (observations.copy(), resized.copy())
        return resized


@functools.lru_cache
def fire_action(env_id: str) -> int:
    """Index of FIRE in the minimal action set (which every env here uses) of e.g. ``ALE/Breakout-v5``."""
    env = gym.make(env_id)
    try:
        meanings = env.unwrapped.get_action_meanings()
    finally:
        env.close()
    if "FIRE" not in meanings:
        raise EnvSettingsError(f"fire_on_new_life: {env_id} has no FIRE action (actions: {meanings})")
    return meanings.index("FIRE")


def num_actions(settings: EnvSettings) -> int:
    """Size of the game's (minimal) action set."""
    env = make_env(settings)
    try:
        return int(env.action_space.n)
    finally:
        env.close()


def make_vector_env(settings: EnvSettings, num_envs: int) -> gym.vector.VectorEnv:
    """ale-py's C++ vector env configured to produce what `make_env` produces.

    The envs step on up to ``torch.get_num_threads()`` threads (ale-py's default is one per core),
    so a run's one thread setting (``--threads``) bounds acting and learning alike and runs side
    by side do not oversubscribe the cores.

    Defaults of `AtariVectorEnv` that differ from the python pipeline (reward clipping, FIRE on
    reset, sticky actions 0) are overridden here by the settings' own. With ``sticky_actions=0`` and ``noop_max=0`` the
    two give identical observations and rewards for the same seed and actions (tested); with
    no-op starts both draw 0..noop_max no-ops, but from different random generators.
    ``fire_on_new_life`` wraps it in `VectorFireOnNewLife`, as `make_env` wraps the single env.
    ``terminal_on_life_loss`` ends an episode at each lost life while the game goes on
    (`VectorLifeLossEnds`); the single env's (gymnasium's) starts a new game at the next reset.
    Episodes auto-reset on the step after they end (``AutoresetMode.NEXT_STEP``); the action
    passed on that step is ignored and the reward is 0. Non-Atari envs get a `SyncVectorEnv`
    of `make_env` with the same autoreset mode.
    """
    if not settings.is_atari:
        return gym.vector.SyncVectorEnv(
            [lambda: make_env(settings) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )
    env = AtariVectorEnv(
        settings.rom_id,
        num_envs,
        max_num_frames_per_episode=settings.max_episode_frames,
        repeat_action_probability=settings.sticky_actions,
        full_action_space=False,
        img_height=ATARI_SCREEN[0] if settings.cropped else settings.screen_size,
        img_width=ATARI_SCREEN[1] if settings.cropped else settings.screen_size,
        grayscale=True,
        stack_num=settings.stack_size,
        frameskip=settings.frame_skip,
        maxpool=True,
        noop_max=settings.noop_max,
        episodic_life=False,  # it resets the whole game at a lost life: `visual_iq.env.lives` instead
        reward_clipping=settings.clip_rewards,
        use_fire_reset=False,
        num_threads=min(num_envs, torch.get_num_threads()),
    )
    if settings.cropped:
        env = _VectorCrop(env, settings)
    if settings.terminal_on_life_loss:
        env = VectorLifeLossEnds(env)
    return VectorFireOnNewLife(env, fire_action(settings.env_id)) if settings.fire_on_new_life else env


def check_observation_settings(saved: EnvSettings, wanted: EnvSettings, what: str,
                               fields: tuple[str, ...] = OBSERVATION_FIELDS) -> None:
    """Raise `EnvSettingsError` naming ``what`` and the fields if ``saved`` gives other observations.

    ``fields``: `OBSERVATION_FIELDS` for a network (checkpoints), `FRAME_FIELDS` for demos, whose
    stored frames can be stacked to any ``stack_size``.
    """
    differences = [d for d in saved.differences(wanted) if d.split(":")[0] in fields]
    if differences:
        raise EnvSettingsError(f"{what} was made with different env settings: " + "; ".join(differences))
