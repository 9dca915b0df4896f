"""Recording demonstrations: turn steps of `make_env` into saved `Episode` files.

`record_episodes` runs any policy (a scripted expert, a trained agent) for N episodes and saves each one the
moment it ends (built with `EpisodeBuilder`); `record_expert` and `record_agent` set it up for the scripted
expert and for a trained checkpoint, `record_human` does the same for a person playing with the keyboard
through `gymnasium.utils.play`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from visual_iq.algo.agent import SoftQAgent, load_agent
from visual_iq.data.demos import Episode, EpisodeBuilder, next_episode_path, save_episode
from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.errors import DemoError
from visual_iq.env.fire import EXECUTED_ACTION
from visual_iq.record.judge import ExpertJudge, NoisyActions


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def record_episodes(
    env: gym.Env,
    policy: Callable[[np.ndarray], int],
    out: str | os.PathLike,
    *,
    episodes: int,
    source: str,
    seed: int = 0,
    on_reset: Callable[[], None] | None = None,
    extra: dict[str, Any] | None = None,
    recorded_action: Callable[[], int] | None = None,
    keep: Callable[[Episode], bool] | None = None,
    max_games: int | None = None,
    progress: Callable[[str], None] = _progress,
) -> list[Path]:
    """Run ``policy(observation) -> action`` for ``episodes`` episodes, saving each as it ends.

    Game i is reset with seed ``seed + i``. ``on_reset`` is called after every reset (experts
    use it to clear their plan). The action stored is the one executed, or what
    ``recorded_action()`` returns after each step (DAgger stores the expert's label instead).
    ``keep``: save only the games it accepts (e.g. a minimum return), playing up to ``max_games``
    games (default: ``episodes``) until ``episodes`` are saved. Returns the paths written.
    """
    settings: EnvSettings = env.get_wrapper_attr("settings")
    written: list[Path] = []
    for index in range(max(max_games or episodes, episodes)):
        if len(written) == episodes:
            break
        episode_seed = seed + index
        observation, _ = env.reset(seed=episode_seed)
        if on_reset is not None:
            on_reset()
        builder = EpisodeBuilder(settings, observation, episode_seed)
        started = time.perf_counter()
        done = False
        while not done:
            action = policy(observation)
            observation, reward, terminated, truncated, info = env.step(action)
            stored = info.get(EXECUTED_ACTION, action) if recorded_action is None else recorded_action()
            builder.add(stored, reward, observation, terminated, truncated)
            done = terminated or truncated
        episode = builder.finish(source, extra)
        rate = f"{episode.length} steps, {episode.length / (time.perf_counter() - started):.0f} steps/s"
        if keep is not None and not keep(episode):
            progress(f"game {index + 1} (seed {episode_seed}): return {episode.episode_return:+.0f}, {rate}: not kept")
            continue
        path = save_episode(episode, next_episode_path(out))
        written.append(path)
        progress(f"episode {len(written)}/{episodes} (seed {episode_seed}): return {episode.episode_return:+.0f}, "
                 f"{rate} -> {path}")
    return written


def record_expert(
    settings: EnvSettings, out: str | os.PathLike, *, episodes: int, seed: int = 0,
    action_noise: float = 0.0, judge_ckpt: str | os.PathLike | None = None,
    deterministic_plans: bool = False, replan_every: int = 6, progress: Callable[[str], None] = _progress,
) -> list[Path]:
    """Record the scripted look-ahead expert (Pong or Breakout).

    ``deterministic_plans``, ``replan_every``: see `LookaheadExpert` (with both True and 1, the
    expert's action is a function of the emulator state; its metadata records them).
    ``action_noise``: probability that a random action is executed instead of the expert's in
    each step (the expert's action is still the one recorded; see `NoisyActions`).
    ``judge_ckpt``: also ask this trained agent for its greedy action at every step and report how
    often it agreed with the expert, per situation (`ExpertJudge` with ``expert_acts``).
    """
    from visual_iq.record.experts import LookaheadExpert

    agent = load_agent(judge_ckpt, settings) if judge_ckpt is not None else None
    env = make_env(settings)
    if action_noise:
        env = NoisyActions(env, action_noise, seed=seed)
    try:
        expert = LookaheadExpert(env, deterministic_plans=deterministic_plans, replan_every=replan_every)
        if isinstance(env, NoisyActions):
            env.on_action = expert.executed  # its rollouts then repeat the executed action in sticky frames
        policy, on_reset, judge = (lambda _observation: expert()), expert.reset, None
        if agent is not None:
            policy = judge = ExpertJudge(greedy_policy(agent), expert, expert_acts=True)
            on_reset = judge.start_episode
        written = record_episodes(
            env, policy, out, episodes=episodes, source="expert", seed=seed, on_reset=on_reset,
            extra={"expert": "LookaheadExpert", "action_noise": action_noise,
                   "deterministic_plans": deterministic_plans, "replan_every": replan_every}, progress=progress,
        )
    finally:
        env.close()
    if judge is not None:
        _report(judge, progress)
    return written


def greedy_policy(agent: SoftQAgent) -> Callable[[np.ndarray], int]:
    """``observation -> action``: the agent's greedy action on one (unbatched) observation."""
    return lambda observation: int(agent.act(observation[None])[0])


def sampling_policy(agent: SoftQAgent) -> Callable[[np.ndarray], int]:
    """``observation -> action``: an action sampled from the agent's softmax(Q/α) on one observation."""
    return lambda observation: int(agent.act(observation[None], sample=True)[0])


def _report(judge: ExpertJudge, progress: Callable[[str], None]) -> None:
    for index in range(len(judge.episodes)):
        progress(f"episode {index + 1}: agreement with the expert {judge.agreement(index)['all']:.3f}")
    progress(judge.report())


def record_agent(
    ckpt: str | os.PathLike, out: str | os.PathLike, *, episodes: int, seed: int = 0,
    game: str | None = None, sticky_actions: float | None = None, noop_max: int | None = None,
    sample: bool = False, min_return: float | None = None, max_games: int | None = None,
    expert_labels: bool = False, dagger: bool = False, progress: Callable[[str], None] = _progress,
) -> list[Path]:
    """Record a trained agent from checkpoint ``ckpt`` playing greedily (argmax Q) or, with
    ``sample``, sampling its soft-Q policy softmax(Q/α) (as the IQ-Learn paper's expert demos were).

    The env is the checkpoint's own game and protocol (its sticky actions and no-op starts unless
    given), playing whole games scored by the game's own points (`EnvSettings.for_evaluation`: an
    agent trained with episodes ending at a lost life or clipped rewards still records whole games).
    If ``game`` is given and is not the checkpoint's game, a `CheckpointError` names both.
    ``min_return``: keep only games scoring at least that, playing up to ``max_games`` games
    (default: 10 per episode asked for) until ``episodes`` are kept; fewer kept is a `DemoError`
    (the kept ones stay saved). ``expert_labels``: also ask the scripted expert for its action
    at every step (`ExpertJudge`; Pong, Breakout) and report how often the agent agreed.
    ``dagger``: as ``expert_labels``, and store the expert's action instead of the agent's (one
    round of DAgger, Ross et al. 2011): the agent's own states, labelled by the expert, to train
    on as demos. Their metadata says so (``labels: expert``); the next state of each step is still
    the one the agent's action led to.
    """
    agent = load_agent(ckpt, EnvSettings(game) if game is not None else None)
    protocol = {"sticky_actions": sticky_actions, "noop_max": noop_max}
    settings = dataclasses.replace(agent.settings.for_evaluation(),
                                   **{name: value for name, value in protocol.items() if value is not None})
    env = make_env(settings)
    torch.manual_seed(seed)  # the sampled actions: the same games again for the same seed
    policy = sampling_policy(agent) if sample else greedy_policy(agent)
    judge, extra = None, {"checkpoint": str(ckpt), "acting": "sample" if sample else "greedy"}
    keep = None
    if min_return is not None:
        extra["min_return"] = min_return
        keep = lambda episode: episode.episode_return >= min_return  # noqa: E731
        max_games = max_games or 10 * episodes
    try:
        if expert_labels or dagger:
            from visual_iq.record.experts import LookaheadExpert

            policy = judge = ExpertJudge(policy, LookaheadExpert(env))
        if dagger:
            extra["labels"] = "expert"
        written = record_episodes(
            env, policy, out, episodes=episodes, source="agent", seed=seed,
            on_reset=judge.start_episode if judge else None, extra=extra,
            recorded_action=(lambda: judge.label) if dagger else None, keep=keep, max_games=max_games,
            progress=progress,
        )
    finally:
        env.close()
    if judge is not None:
        _report(judge, progress)
    if len(written) < episodes:
        raise DemoError(f"only {len(written)} of {max_games} games scored at least {min_return} "
                        f"(the {len(written)} kept are in {out}); lower --min-return or raise --max-games")
    return written


class _SeedPerEpisode(gym.Wrapper):
    """Reset episode i with seed ``base + i`` when the caller passes no seed (as `play` does).

    A reset with no step since the previous one (`play` resets once before its loop) reuses
    that seed, so the first played episode gets ``base``.
    """

    def __init__(self, env: gym.Env, base_seed: int) -> None:
        super().__init__(env)
        self.next_seed = base_seed
        self.last_seed: int | None = None
        self.stepped = True

    def step(self, action):
        self.stepped = True
        return self.env.step(action)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            if self.stepped:
                self.last_seed, self.next_seed = self.next_seed, self.next_seed + 1
            seed = self.last_seed
        self.last_seed, self.stepped = seed, False
        return self.env.reset(seed=seed, options=options)


def record_human(
    settings: EnvSettings,
    out: str | os.PathLike,
    *,
    episodes: int | None = None,
    seed: int = 0,
    fps: int = 15,
    zoom: float = 4.0,
    on_step: Callable[[int], None] | None = None,
    progress: Callable[[str], None] = _progress,
) -> list[Path]:
    """A person plays with the keyboard (`gymnasium.utils.play`); each finished episode is saved.

    Keys are the game's own ALE map (`get_keys_to_action`). ``fps`` is agent steps per second
    (15 is real time with frame skip 4). Closing the window, ESC or Ctrl-C stop recording and
    keep every finished episode; the episode in progress is discarded. ``on_step(step_index)`` is
    called after every step (tests use it to post key events). Recording stops by itself after
    ``episodes`` finished episodes, if given.
    """
    import pygame
    from gymnasium.utils.play import play

    env = _SeedPerEpisode(make_env(settings, render_mode="rgb_array"), seed)
    keys_to_action = env.unwrapped.get_keys_to_action()
    written: list[Path] = []
    state: dict[str, Any] = {"builder": None, "steps": 0, "started": time.perf_counter()}

    def callback(obs_t, obs_tp1, action, reward, terminated, truncated, info) -> None:
        if state["builder"] is None:
            first = obs_t[0] if isinstance(obs_t, tuple) else obs_t  # play passes reset's tuple
            state["builder"] = EpisodeBuilder(settings, first, env.last_seed)
            state["started"] = time.perf_counter()
        builder: EpisodeBuilder = state["builder"]
        builder.add(action, reward, obs_tp1, terminated, truncated)
        state["steps"] += 1
        if terminated or truncated:
            episode = builder.finish("human", {"fps": fps})
            path = save_episode(episode, next_episode_path(out))
            written.append(path)
            state["builder"] = None
            progress(
                f"episode {len(written)}: return {episode.episode_return:+.0f}, "
                f"{episode.length} steps -> {path}"
            )
            if episodes is not None and len(written) >= episodes:
                pygame.event.post(pygame.event.Event(pygame.QUIT))
        if on_step is not None:
            on_step(state["steps"])

    try:
        play(env, fps=fps, zoom=zoom, callback=callback, keys_to_action=keys_to_action, noop=0)
    except KeyboardInterrupt:
        progress("interrupted: the episode in progress was discarded")
    finally:
        env.close()
    progress(f"saved {len(written)} episode(s) to {out}")
    return written
