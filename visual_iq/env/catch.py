"""`visual_iq/Catch-v0`: a tiny pixel task with a known optimal demonstrator, for fast tests.

A ball falls down a 7x7 grid (12x12-pixel cells, so frames are 84x84 uint8) one row per step;
the paddle on the bottom row moves LEFT, RIGHT or stays (NOOP). When the ball reaches the bottom
row the reward is +1 if the paddle is under it, else -1, and a new ball starts at a random
column. An episode is ``balls`` balls (6 steps each). The expert (`catch_expert_action`) always
catches (+balls); a uniformly random policy averages about -0.7 per ball.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

GRID, CELL = 7, 12
NOOP, LEFT, RIGHT = 0, 1, 2


class CatchEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, balls: int = 5, render_mode: str | None = None) -> None:
        self.balls = balls
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (GRID * CELL, GRID * CELL), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.ball_row = self.ball_column = self.paddle = self.caught = 0

    def _frame(self) -> np.ndarray:
        frame = np.zeros((GRID * CELL, GRID * CELL), np.uint8)
        frame[self.ball_row * CELL:(self.ball_row + 1) * CELL, self.ball_column * CELL:(self.ball_column + 1) * CELL] = 255
        frame[(GRID - 1) * CELL + CELL // 2:, self.paddle * CELL:(self.paddle + 1) * CELL] = 128
        return frame

    def _new_ball(self) -> None:
        self.ball_row, self.ball_column = 0, int(self.np_random.integers(GRID))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.paddle, self.caught = GRID // 2, 0
        self._new_ball()
        return self._frame(), {}

    def step(self, action: int):
        self.paddle = int(np.clip(self.paddle + {NOOP: 0, LEFT: -1, RIGHT: 1}[int(action)], 0, GRID - 1))
        self.ball_row += 1
        reward, terminated = 0.0, False
        if self.ball_row == GRID - 1:
            reward = 1.0 if self.paddle == self.ball_column else -1.0
            self.caught += 1
            terminated = self.caught >= self.balls
            if not terminated:
                self._new_ball()
        return self._frame(), reward, terminated, False, {}

    def render(self) -> np.ndarray:
        return np.repeat(self._frame()[:, :, None], 3, axis=2)

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        return {(ord("a"),): LEFT, (ord("d"),): RIGHT}


def catch_expert_action(env: gym.Env) -> int:
    """The optimal action: move the paddle towards the ball's column."""
    catch: CatchEnv = env.unwrapped  # type: ignore[assignment]
    if catch.paddle < catch.ball_column:
        return RIGHT
    if catch.paddle > catch.ball_column:
        return LEFT
    return NOOP


def register() -> None:
    """Make ``gym.make("visual_iq/Catch-v0")`` work (called when the package is imported)."""
    if "visual_iq/Catch-v0" not in gym.registry:
        gym.register("visual_iq/Catch-v0", entry_point=CatchEnv)
