"""Where an agent loses points: every approach of the ball to its paddle, missed or returned.

A Pong or Breakout game is a sequence of *approaches*: the ball travels towards the player's
paddle and is either returned (it moves away again) or missed (a point or a life is lost). An
agent's score follows from two rates: approaches per game and the share missed. `play_approaches`
plays a policy, splits its games into approaches (from the RAM the scripted expert reads), asks the
expert for its action at every step, and, for every missed approach, lets the expert take over from
the moment it would have started planning the hit (`LookaheadExpert.is_close`): if the expert saves
most of those, the agent lost them in the last steps before the paddle, not earlier.
`summarise` turns the approaches into those figures; `visual-iq misses` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np

from visual_iq.record.experts import LookaheadExpert, restore_state

MISSED, RETURNED = "missed", "returned"


@dataclass
class Approach:
    """One approach of the ball: the player's agreement with the expert, step by step, and how it ended."""

    episode: int
    outcome: str = ""
    """``missed`` (a point or life lost) or ``returned`` (the ball moves away again)."""
    agreed: list[bool] = field(default_factory=list)
    """Per step: the player's action was the expert's."""
    close_from: int | None = None
    """Index of the first step at which the expert would plan the hit (None: never got there)."""
    takeover: list[str] = field(default_factory=list)
    """Outcomes of the expert playing on from the close point in place of the player (missed approaches)."""


def approach_outcome(before: int, after: int, approaching_sign: int, reward: float, lost_life: bool) -> str | None:
    """How a step ended an approach, from the ball's coordinate towards the paddle before and after
    it: ``missed`` if a point or life was lost, ``returned`` if the ball moves away, else None."""
    if reward < 0 or lost_life:
        return MISSED
    if before and after and (after - before) * approaching_sign < 0:
        return RETURNED
    return None


def expert_plays_on(env: gym.Env, state, last_action: int = 0, max_steps: int = 500) -> str:
    """Restore the emulator ``state`` and let a fresh expert play until the approach ends.

    ``last_action``: the action executed before ``state`` (the one its rollouts' sticky frames repeat).

    Sticky actions draw from the emulator's random stream, so repeated calls are different samples.
    The caller restores its own state afterwards. Returns ``missed``, ``returned``, or ``timeout``.
    """
    expert = LookaheadExpert(env)
    expert.executed(last_action)
    restore_state(expert.ale, state, expert.action_set[last_action])
    towards = expert.positions()[1]
    for _ in range(max_steps):
        reward, lost_life = expert.emulate_step(expert())
        after = expert.positions()[1]
        outcome = approach_outcome(towards, after, expert.spec.approaching_sign, reward, lost_life)
        if outcome is not None:
            return outcome
        towards = after
    return "timeout"


def play_approaches(
    env: gym.Env,
    policy: Callable[[np.ndarray], int] | None,
    *,
    episodes: int,
    seed: int = 0,
    takeover_samples: int = 3,
    progress: Callable[[str], None] = print,
) -> tuple[list[Approach], list[float]]:
    """Play ``episodes`` episodes (seeds ``seed`` …) with ``policy(observation) -> action`` and
    return every approach and the episode returns. ``policy`` None: the expert itself plays (its own
    miss rate, the baseline; no takeovers). ``takeover_samples``: expert play-outs per missed approach.
    Asking the expert does not change the game, but a take-over does: it plays in the game's own
    emulator and restores its state (with the action sticky frames repeat, `restore_state`), which
    leaves out the random stream, so a game with take-overs goes on differently after each missed approach.
    """
    expert = LookaheadExpert(env)
    ale, sign = expert.ale, expert.spec.approaching_sign
    approaches: list[Approach] = []
    returns: list[float] = []
    for index in range(episodes):
        observation, _ = env.reset(seed=seed + index)
        expert.reset()
        current, close_state, moved, total, done = None, None, 0, 0.0, False
        close_action = 0
        while not done:
            along, towards, _ = expert.positions()
            previous = expert.last_action  # executed in the step before this one
            label = expert()
            action = label if policy is None else policy(observation)
            expert.executed(action)
            in_play = bool(along and towards)
            if current is None and in_play and moved * sign > 0:
                current, close_state = Approach(index), None
            if current is not None and current.close_from is None and expert.is_close(towards):
                current.close_from, close_state, close_action = len(current.agreed), ale.cloneState(), previous
            lives = ale.lives()
            observation, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            total += float(reward)
            after = expert.positions()[1]
            moved = after - towards if (after and towards) else 0
            if current is None:
                continue
            current.agreed.append(action == label)
            outcome = approach_outcome(towards, after, sign, float(reward), ale.lives() < lives)
            if outcome is None:
                continue
            current.outcome = outcome
            if outcome == MISSED and policy is not None and close_state is not None:
                resume = ale.cloneState()
                current.takeover = [expert_plays_on(env, close_state, close_action) for _ in range(takeover_samples)]
                restore_state(ale, resume, expert.action_set[action])
            approaches.append(current)
            current = None
        returns.append(total)
        own = [a for a in approaches if a.episode == index]
        missed = sum(a.outcome == MISSED for a in own)
        progress(f"episode {index + 1}/{episodes}: return {total:+.0f}, {missed} of {len(own)} approaches missed")
    return approaches, returns


def _mean(values: list) -> float | None:
    """The mean, or None (JSON null) for no values: NaN is not standard JSON."""
    return float(np.mean(values)) if values else None


def summarise(approaches: list[Approach], returns: list[float]) -> dict:
    """The figures of `play_approaches`: approaches per episode, share missed, agreement with the
    expert before the close point and in the two halves of the close phase (missed and returned
    approaches apart), and the share of missed approaches the expert saves by taking over."""
    result: dict = {"episodes": len(returns), "mean_return": _mean(returns),
                    "approaches": len(approaches)}
    result["approaches_per_episode"] = len(approaches) / len(returns) if returns else None
    missed = [a for a in approaches if a.outcome == MISSED]
    result["missed"] = len(missed)
    result["miss_rate"] = len(missed) / len(approaches) if approaches else None
    agreement = {}
    for outcome in (MISSED, RETURNED):
        before, first, second = [], [], []
        for approach in (a for a in approaches if a.outcome == outcome):
            close = len(approach.agreed) if approach.close_from is None else approach.close_from
            half = close + (len(approach.agreed) - close + 1) // 2
            before += approach.agreed[:close]
            first += approach.agreed[close:half]
            second += approach.agreed[half:]
        agreement[outcome] = {"before_close": _mean(before), "close_first_half": _mean(first),
                              "close_second_half": _mean(second), "steps": len(before) + len(first) + len(second)}
    result["agreement"] = agreement
    play_outs = [outcome for a in missed for outcome in a.takeover]
    result["takeover_play_outs"] = len(play_outs)
    result["takeover_saved"] = _mean([outcome == RETURNED for outcome in play_outs])
    return result
