"""The scripted expert beside someone else's game: asked what it would do at every step (`ExpertJudge`), or
its actions recorded while random ones are sometimes executed instead (`NoisyActions`, DART-style demos)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import gymnasium as gym
import numpy as np

from visual_iq.errors import ConfigError

if TYPE_CHECKING:
    from visual_iq.record.experts import LookaheadExpert


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
