"""Scripted experts for Pong and Breakout that read the ALE RAM and plan by simulation.

Both games reduce to one decision: where to put the paddle when the ball arrives. The expert
answers it by search. Once the ball coming towards the paddle is close enough (``plan_from``),
it clones the emulator state (`ALEInterface.cloneState`), and for each
candidate paddle position simulates agent steps in a private copy of the emulator with a simple
"move the paddle to the target" controller until a point is scored or lost (Pong), or a life is
lost or the horizon ends (Breakout); it then commits to the best target. The env's own emulator is
only read, so asking the expert never changes the game (simulating in it and restoring the state
did: ALE's state leaves out the action sticky frames repeat, so after a plan the game's next sticky
frames repeated the simulation's last action, and the rollouts drew from the game's random stream).
For the same reason each rollout starts from the game's last action (`restore_state`; the expert
assumes its own unless told otherwise with `executed`), so its sticky frames repeat what the game's would.
The rest of the time it follows the ball, so most of its play is a visible function of the frames
(easy to imitate), and a plan costs a few thousand emulated frames per rally, not per step. Observations the recorder
stores are the normal pixel observations; the RAM is read only to decide the action.

RAM addresses (read off the emulator; `game_spec` holds them): Pong ball x/y = ram[49]/ram[54], player paddle
y = ram[51]; Breakout ball x/y = ram[99]/ram[101], paddle x = ram[72].
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from ale_py import ALEInterface, LoggerMode, roms

from visual_iq.errors import ConfigError


@dataclass(frozen=True)
class _GameSpec:
    """Where a game keeps its ball and paddle, and which actions move the paddle."""

    ball_along: int  # RAM index of the ball coordinate along the paddle's axis of motion
    ball_towards: int  # RAM index of the ball coordinate towards / away from the paddle
    paddle: int  # RAM index of the paddle position along its axis
    increase: int  # action index that increases the paddle coordinate
    decrease: int  # action index that decreases the paddle coordinate
    approaching_sign: int  # +1 if the ball approaches the paddle when ball_towards grows
    targets: tuple[int, ...]  # candidate paddle positions tried by the planner
    rest: int  # paddle position while no ball is in play
    horizon: int  # agent steps simulated per candidate
    fire: int | None  # action that serves the ball, if the game needs one
    samples: int  # simulated rollouts per candidate (the worst counts); sticky actions add noise
    plan_from: int | None  # plan only once ball_towards has passed this (follow the ball before)


_SPECS = {
    # Pong: LEFT (3) moves the paddle down (larger y), RIGHT (2) up. The ball approaches when x grows.
    "Pong": _GameSpec(
        ball_along=54, ball_towards=49, paddle=51, increase=3, decrease=2, approaching_sign=1,
        targets=tuple(range(38, 206, 6)), rest=120, horizon=150, fire=None, samples=1, plan_from=131,
    ),
    # Breakout: RIGHT (2) increases paddle x, LEFT (3) decreases. The ball approaches when y grows.
    # The paddle meets the ball at y ~174-183. Planning from y 140 (following the ball before, as in
    # Pong, so the approach is a visible function of the frames) costs a third of the return: +214
    # on seeds 1000-1019 against +324 planning from the ball's turn; from 155 on the plan starts too
    # late (+37 ... +147 on three games). research/results.md "A Breakout expert that plans late".
    "Breakout": _GameSpec(
        ball_along=99, ball_towards=101, paddle=72, increase=2, decrease=3, approaching_sign=1,
        targets=tuple(range(55, 200, 5)), rest=120, horizon=90, fire=1, samples=2, plan_from=140,
    ),
}


def game_spec(game: str) -> _GameSpec:
    """Where ``game`` keeps its ball and paddle in RAM and when its expert plans (`ConfigError` for a
    game without an expert)."""
    if game not in _SPECS:
        raise ConfigError(f"no scripted expert for {game}; experts exist for {', '.join(_SPECS)}")
    return _SPECS[game]


_PRIMING_FRAMES = 8  # the stale action survives 8 sticky frames with probability 0.25**8 < 2e-5


def restore_state(ale: ALEInterface, state, last_action) -> None:
    """``ale.restoreState(state)``, with ``last_action`` (an ALE action) as the one its next sticky
    frames repeat. ALE's state leaves that action out, so a plain restore keeps whatever the emulator
    did last: a rollout's first sticky frames repeated the previous rollout's last action."""
    ale.restoreState(state)
    for _ in range(_PRIMING_FRAMES):  # each frame keeps the stale action with the sticky probability
        ale.act(last_action)
    ale.restoreState(state)


def _planning_emulator(rom: str, sticky_actions: float, seed: int = 0) -> ALEInterface:
    """A private emulator of ``rom`` for the rollouts, with the given sticky-action probability
    (0: deterministic rollouts) and its own random stream; states are copied into it from the env's
    emulator with ``restoreState``."""
    ale = ALEInterface()
    ale.setLoggerMode(LoggerMode.Error)
    ale.setFloat("repeat_action_probability", sticky_actions)
    ale.setInt("random_seed", seed)
    ale.setInt("frame_skip", 1)
    ale.loadROM(roms.get_rom_path(rom))
    return ale


class LookaheadExpert:
    """A planning expert for Pong or Breakout; call it with nothing, get the next action.

    It reads the RAM of the env it was built for, so use one expert per env, and call `reset`
    after every ``env.reset``. ``deadband``: how close (RAM units) counts as "at the target";
    ``replan_every``: agent steps between full plans while the ball approaches (every step in
    between, the current target is re-checked and replaced by a safe one if it would miss);
    ``samples``: rollouts per candidate target (default: per game).
    ``deterministic_plans``: simulate without sticky actions instead of with the env's: a plan is
    then a fixed function of the emulator state, so two experts in the same state choose the same
    target (with sticky rollouts they choose different actions on ~4 % of planned-phase steps:
    label noise an imitator cannot learn away; `research/expert_consistency.py`).
    """

    def __init__(
        self, env: gym.Env, deadband: int = 12, replan_every: int = 6, samples: int | None = None,
        deterministic_plans: bool = False,
    ) -> None:
        self.spec = game_spec(env.get_wrapper_attr("settings").game)
        self.ale = env.unwrapped.ale
        self.action_set = env.unwrapped._action_set
        self.frame_skip = env.get_wrapper_attr("settings").frame_skip
        self.deadband = deadband
        self.replan_every = replan_every
        self.samples = samples or self.spec.samples
        sticky = 0.0 if deterministic_plans else env.get_wrapper_attr("settings").sticky_actions
        self.planner = _planning_emulator(env.unwrapped._game, sticky)
        if deterministic_plans:
            self.samples = 1  # every rollout of a target is the same
        self.reset()

    def reset(self) -> None:
        self.target: int | None = None
        self.steps_since_plan = 0
        self.previous_paddle: int | None = None
        self.previous_towards: int | None = None
        self.last_action = 0  # the action the game's sticky frames repeat (see `restore_state`)
        self.phase = "no ball"  # what the last call did: "no ball", "following" or "planned"

    def positions(self, ale: ALEInterface | None = None) -> tuple[int, int, int]:
        """(ball along the paddle's axis, ball towards the paddle, paddle position), read from the
        RAM of ``ale`` (default: the env's); both ball coordinates are 0 while no ball is in play."""
        ram = (ale or self.ale).getRAM()
        spec = self.spec
        return int(ram[spec.ball_along]), int(ram[spec.ball_towards]), int(ram[spec.paddle])

    def _move_to(self, target: int, paddle: int) -> int:
        """Move the paddle towards ``target`` smoothly: press, then coast to a stop.

        The paddle keeps moving for about two agent steps after a release, so the controller
        aims the point where the paddle would stop if released now (position + 0.7 x velocity),
        does nothing within ``deadband`` of the target, and never presses against the current
        motion (it lets the paddle coast instead). Measured on Pong: mean error ~6 RAM units,
        no oscillation, so the action is a smooth function of what the frames show.
        """
        velocity = 0 if self.previous_paddle is None else paddle - self.previous_paddle
        self.previous_paddle = paddle
        error = target - (paddle + 0.7 * velocity)
        if abs(error) <= self.deadband:
            return 0
        if abs(velocity) >= 4 and np.sign(velocity) != np.sign(error):
            return 0
        return self.spec.increase if error > 0 else self.spec.decrease

    def emulate_step(self, action: int, ale: ALEInterface | None = None) -> tuple[float, bool]:
        """One agent step in ``ale`` (default: the env's emulator): returns (reward, life lost or game over)."""
        ale = ale or self.ale
        lives = ale.lives()
        reward = 0.0
        for _ in range(self.frame_skip):
            reward += ale.act(self.action_set[action])
        return reward, ale.game_over() or ale.lives() < lives

    def _score(self, target: int, until_bounce: bool = False) -> float:
        """Simulated value of sending the paddle to ``target`` for the coming rally.

        Simulates until the ball, after bouncing back, approaches the paddle again (value: reward
        collected), a point or life is lost (value: -100, less if later), or, in Pong, a point
        is won (value: +10, more if sooner).
        """
        total = 0.0
        previous = self.positions(self.planner)[1]
        bounced = False
        for step in range(self.spec.horizon):
            _, _, paddle = self.positions(self.planner)
            reward, lost_life = self.emulate_step(self._move_to(target, paddle), self.planner)
            if lost_life or reward < 0:
                return total - 100.0 + step * 0.01
            if reward > 0:
                total += reward
                if self.spec.fire is None:  # Pong: the rally is won, sooner is better
                    return total * 10.0 - step * 0.01
            towards = self.positions(self.planner)[1]
            moving = (towards - previous) * self.spec.approaching_sign
            previous = towards
            if moving < 0:
                if until_bounce:
                    return total
                bounced = True
            elif moving > 0 and bounced:
                return total
        return total

    def _scores(self, targets: tuple[int, ...], until_bounce: bool) -> list[float]:
        """Worst simulated score of each target over ``samples`` rollouts, simulated in the private
        emulator from the env's state (which is only read)."""
        state, paddle_memory = self.ale.cloneState(), self.previous_paddle
        scores = []
        for target in targets:
            samples = []
            for _ in range(self.samples):  # sticky actions make each rollout a random sample
                restore_state(self.planner, state, self.action_set[self.last_action])
                samples.append(self._score(target, until_bounce))
                self.previous_paddle = paddle_memory
            scores.append(float(np.min(samples)))
        return scores

    def is_close(self, towards: int) -> bool:
        """Whether the ball is close enough to the paddle's line to plan the hit."""
        start = self.spec.plan_from
        return start is None or (towards - start) * self.spec.approaching_sign >= 0

    def _plan(self, until_bounce: bool = False) -> int:
        scores = self._scores(self.spec.targets, until_bounce)
        padded = np.pad(np.asarray(scores), 1, mode="edge")
        windows = np.stack([padded[:-2], padded[1:-1], padded[2:]])
        # Judge each target by its worst neighbour (the real paddle stops only near its target),
        # then by the neighbours' mean.
        value = windows.min(axis=0) * 1000.0 + windows.mean(axis=0)
        return self.spec.targets[int(np.argmax(value))]

    def __call__(self) -> int:
        """The expert's next action; it assumes the action is executed (else tell it with `executed`)."""
        self.last_action = self._decide()
        return self.last_action

    def executed(self, action: int) -> None:
        """Tell the expert the action the game executed instead of its own (judged or noisy play), so
        that its rollouts' sticky frames repeat the game's action."""
        self.last_action = action

    def _decide(self) -> int:
        along, towards, paddle = self.positions()
        previous, self.previous_towards = self.previous_towards, towards
        ball_visible = along != 0 and towards != 0
        if not ball_visible:
            self.target, self.phase = None, "no ball"
            return self.spec.fire if self.spec.fire is not None else self._move_to(self.spec.rest, paddle)
        if previous is None:
            self.phase = "following"
            return 0
        approaching = (towards - previous) * self.spec.approaching_sign > 0
        if approaching and not self.is_close(towards):
            approaching = False  # still far: keep following the ball (a visible, imitable rule)
            self.target = None
        if approaching and (self.target is None or self.steps_since_plan >= self.replan_every):
            self.target = self._plan()
            self.steps_since_plan = 0
        elif approaching and min(self._scores((self.target,), until_bounce=True)) < 0:
            self.target = self._plan(until_bounce=True)  # about to miss: just reach the ball
        elif not approaching and (towards - previous) != 0:
            self.target = None
        self.steps_since_plan += 1
        self.phase = "following" if self.target is None else "planned"
        if self.target is None:  # no plan (the ball is going away): follow the ball
            return self._move_to(along, paddle)
        return self._move_to(self.target, paddle)
