"""Recording demonstrations: turn steps of `make_env` into saved `Episode` files.

`record_episodes` runs any policy (a scripted expert, a trained agent) for N episodes and saves
each one the moment it ends (built with `EpisodeBuilder`); `record_human` does the same for a
person playing with the keyboard through `gymnasium.utils.play`. `rerender_demos` replays recorded
games to store their frames under other frame settings (a crop of the playfield, another size).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from visual_iq.algo.agent import SoftQAgent, load_agent
from visual_iq.data.demos import Episode, EpisodeBuilder, episode_paths, load_episode, next_episode_path, save_episode
from visual_iq.env.envs import (FRAME_FIELDS, NOOP_MAX, STICKY_ACTIONS, EnvSettings, crop_and_resize, make_env,
                            make_screen_env)
from visual_iq.errors import ConfigError, DemoError
from visual_iq.env.fire import EXECUTED_ACTION

if TYPE_CHECKING:
    from visual_iq.record.experts import LookaheadExpert


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
    progress: Callable[[str], None] = _progress,
) -> list[Path]:
    """Run ``policy(observation) -> action`` for ``episodes`` episodes, saving each as it ends.

    Episode i is reset with seed ``seed + i``. ``on_reset`` is called after every reset (experts
    use it to clear their plan). The action stored is the one executed, or what
    ``recorded_action()`` returns after each step (DAgger stores the expert's label instead).
    Returns the paths written.
    """
    settings: EnvSettings = env.get_wrapper_attr("settings")
    written = []
    for index in range(episodes):
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
        path = save_episode(episode, next_episode_path(out))
        written.append(path)
        elapsed = time.perf_counter() - started
        progress(
            f"episode {index + 1}/{episodes}: return {episode.episode_return:+.0f}, "
            f"{episode.length} steps, {episode.length / elapsed:.0f} steps/s -> {path}"
        )
    return written


class NoisyActions(gym.ActionWrapper):
    """Executes a uniformly random action instead of the given one with probability ``noise``.

    For DART-style demonstrations (Laskey et al., 2017): the expert's intended action is what gets
    recorded, while the executed one is sometimes random, so the demos also show the expert
    recovering from the small mistakes an imitator makes, not only the states of perfect play.
    """

    def __init__(
        self, env: gym.Env, noise: float, seed: int = 0, on_action: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(env)
        if not 0.0 <= noise < 1.0:
            raise ConfigError(f"action noise must be in [0, 1), got {noise}")
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.on_action = on_action  # told every executed action (the expert's rollouts need the game's)

    def action(self, action):
        if self.noise and self.rng.random() < self.noise:
            action = int(self.rng.integers(self.action_space.n))
        if self.on_action is not None:
            self.on_action(int(action))
        return action


class ExpertJudge:
    """Plays ``policy`` and asks the scripted ``expert`` at every step what it would have done.

    The agreement on the agent's *own* states is what imitation from fixed demos cannot see (the
    demos only show the expert's states): where it drops below the agreement on the expert's
    states (``expert_acts``: the expert's action is executed and the policy only judged), the
    agent has drifted to states the demos do not cover. Steps are counted by what the expert was
    doing: ``no ball`` (between points), ``following`` the ball, or steering to a ``planned``
    meeting point (the ball approaching and close). Call `start_episode` after every reset;
    ``episodes`` holds one ``{phase: [steps, agreed]}`` tally per episode, ``label`` the expert's
    action at the last step.
    """

    PHASES = ("no ball", "following", "planned")

    def __init__(self, policy: Callable[[np.ndarray], int], expert: LookaheadExpert, expert_acts: bool = False) -> None:
        self.policy = policy
        self.expert = expert
        self.expert_acts = expert_acts
        self.episodes: list[dict[str, list[int]]] = []
        self.label: int | None = None

    def start_episode(self) -> None:
        self.expert.reset()
        self.episodes.append({phase: [0, 0] for phase in self.PHASES})

    def __call__(self, observation: np.ndarray) -> int:
        label = self.label = self.expert()  # reads the RAM before the step, as when the expert records
        action = self.policy(observation)
        tally = self.episodes[-1][self.expert.phase]
        tally[0] += 1
        tally[1] += int(action == label)
        if not self.expert_acts:
            self.expert.executed(action)
        return label if self.expert_acts else action

    def counts(self, episode: int | None = None) -> dict[str, tuple[int, int]]:
        """``(steps, agreed)`` per phase and for ``all``, over one episode or (None) all of them."""
        tallies = self.episodes if episode is None else [self.episodes[episode]]
        counts = {phase: tuple(int(n) for n in np.sum([t[phase] for t in tallies], axis=0)) for phase in self.PHASES}
        counts["all"] = tuple(int(n) for n in np.sum(list(counts.values()), axis=0))
        return counts

    def agreement(self, episode: int | None = None) -> dict[str, float]:
        """Share of steps where the policy's action equals the expert's: ``all`` and per phase
        (NaN for a phase with no steps), over one episode or (None) all of them."""
        return {phase: agreed / steps if steps else float("nan") for phase, (steps, agreed) in self.counts(episode).items()}

    def report(self) -> str:
        counts, share = self.counts(), self.agreement()
        parts = ", ".join(f"{phase} {share[phase]:.3f} ({counts[phase][0]} steps)" for phase in self.PHASES)
        states = "the expert's" if self.expert_acts else "the agent's"
        return f"agreement with the expert on {states} states: {share['all']:.3f} ({parts})"


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


def _report(judge: ExpertJudge, progress: Callable[[str], None]) -> None:
    for index in range(len(judge.episodes)):
        progress(f"episode {index + 1}: agreement with the expert {judge.agreement(index)['all']:.3f}")
    progress(judge.report())


def record_agent(
    ckpt: str | os.PathLike, out: str | os.PathLike, *, episodes: int, seed: int = 0,
    game: str | None = None, sticky_actions: float = STICKY_ACTIONS, noop_max: int = NOOP_MAX,
    expert_labels: bool = False, dagger: bool = False, progress: Callable[[str], None] = _progress,
) -> list[Path]:
    """Record a trained agent from checkpoint ``ckpt`` playing greedily (argmax Q).

    The env is the checkpoint's own game and observation settings, with the given sticky-action
    probability and no-op starts. If ``game`` is given and is not the checkpoint's game, a
    `CheckpointError` names both. ``expert_labels``: also ask the scripted expert for its action
    at every step (`ExpertJudge`; Pong, Breakout) and report how often the agent agreed.
    ``dagger``: as ``expert_labels``, and store the expert's action instead of the agent's (one
    round of DAgger, Ross et al. 2011): the agent's own states, labelled by the expert, to train
    on as demos. Their metadata says so (``labels: expert``); the next state of each step is still
    the one the agent's action led to.
    """
    agent = load_agent(ckpt, EnvSettings(game) if game is not None else None)
    settings = dataclasses.replace(agent.settings, sticky_actions=sticky_actions, noop_max=noop_max)
    env = make_env(settings)
    policy, judge, extra = greedy_policy(agent), None, {"checkpoint": str(ckpt)}
    try:
        if expert_labels or dagger:
            from visual_iq.record.experts import LookaheadExpert

            policy = judge = ExpertJudge(policy, LookaheadExpert(env))
        if dagger:
            extra["labels"] = "expert"
        written = record_episodes(
            env, policy, out, episodes=episodes, source="agent", seed=seed,
            on_reset=judge.start_episode if judge else None, extra=extra,
            recorded_action=(lambda: judge.label) if dagger else None, progress=progress,
        )
    finally:
        env.close()
    if judge is not None:
        _report(judge, progress)
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
