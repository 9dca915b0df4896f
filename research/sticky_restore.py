"""Does ALE's restoreState bring back the action that sticky frames repeat? (It does not.)

    python research/sticky_restore.py [--trials N] [--sticky P]

Pong in a bare `ALEInterface` with sticky actions. Each trial: NOOPs (so the last action is NOOP),
clone the state, then either press UP for 30 frames and restore the state ("simulated"), or not
("untouched"); then one agent step of NOOP (4 frames). A sticky frame repeats the last action, so
the paddle can only move in that NOOP step if the last action is still UP after the restore. The
share of trials where it moved is printed for both. Until 2026-12-06 the scripted expert planned
by simulating in the game's own emulator and restoring its state, which this shows leaks the
simulation's last action into the game's next sticky frames (`visual_iq/record/experts.py` now plans in a
private emulator; tests/test_experts.py checks that a judged game equals the unjudged one).
"""

from __future__ import annotations

import argparse

from ale_py import ALEInterface, LoggerMode, roms

PADDLE_Y = 51  # Pong's player paddle in RAM (shared/atari-notes.md)


def moved_share(ale: ALEInterface, trials: int, simulate: bool) -> float:
    noop, up = ale.getMinimalActionSet()[0], ale.getMinimalActionSet()[2]
    moved = 0
    for _ in range(trials):
        for _ in range(10):
            ale.act(noop)
        state = ale.cloneState()
        if simulate:
            for _ in range(30):
                ale.act(up)
            ale.restoreState(state)
        before = int(ale.getRAM()[PADDLE_Y])
        for _ in range(4):
            ale.act(noop)
        moved += int(ale.getRAM()[PADDLE_Y]) != before
        ale.restoreState(state)
    return moved / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--sticky", type=float, default=0.5, help="repeat_action_probability")
    args = parser.parse_args()
    ale = ALEInterface()
    ale.setLoggerMode(LoggerMode.Error)
    ale.setFloat("repeat_action_probability", args.sticky)
    ale.setInt("random_seed", 1)
    ale.loadROM(roms.get_rom_path("pong"))
    ale.reset_game()
    for _ in range(100):
        ale.act(ale.getMinimalActionSet()[0])
    simulated = moved_share(ale, args.trials, simulate=True)
    untouched = moved_share(ale, args.trials, simulate=False)
    print(f"sticky {args.sticky}, {args.trials} trials: the paddle moved in a NOOP step after a restore "
          f"in {simulated:.3f} of trials after simulating UP, {untouched:.3f} without")


if __name__ == "__main__":
    main()
