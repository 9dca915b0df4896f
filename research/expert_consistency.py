"""Is the scripted expert's action a function of the state? The ceiling on imitating it from frames.

    python research/expert_consistency.py [--deterministic-plans] [--replan-every N] [--seed S]
        [--episodes N] [--samples K] [--stride N] [--max-states N] [--json OUT]

The expert plays Pong (sticky actions 0.25, as the demos). At every ``stride``-th step of the planned
phase (the ball approaching and within planning range), its emulator state is saved and K *fresh*
experts (no committed target: they plan now) are asked for their action from it, then K copies of
the playing expert with its memory (its committed target and the steps since it planned). Prints:

- fresh self-agreement: how often two fresh plans from the same state give the same action (with
  rollouts under sticky actions they are random samples; with ``--deterministic-plans``, 1);
- memory agreement: the playing expert's action against a fresh plan's, i.e. how much its action
  depends on what it decided steps before (invisible in the frames; 1 with ``--replan-every 1``).

An imitator that sees only the frames cannot agree with the expert's labels more than these allow.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.record.experts import LookaheadExpert
from visual_iq.files import atomic_write_text

MEMORY = ("target", "steps_since_plan", "previous_paddle", "previous_towards", "phase")


def _restore(expert: LookaheadExpert, state, memory: dict) -> None:
    expert.ale.restoreState(state)
    for key, value in memory.items():
        setattr(expert, key, value)


def _actions(expert: LookaheadExpert, state, memory: dict, samples: int, fresh: bool) -> list[int]:
    """The actions of ``samples`` experts from ``state``; the expert and emulator are left as they were."""
    actions = []
    for _ in range(samples):
        _restore(expert, state, memory)
        if fresh:
            expert.target = None  # no committed target: plan from this state
        actions.append(expert())
    _restore(expert, state, memory)
    return actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deterministic-plans", action="store_true")
    parser.add_argument("--replan-every", type=int, default=6)
    parser.add_argument("--seed", type=int, default=70000)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--samples", type=int, default=3, help="fresh experts (and copies with memory) per state")
    parser.add_argument("--stride", type=int, default=5, help="measure every N-th planned-phase step")
    parser.add_argument("--max-states", type=int, default=None, help="stop after this many measured states")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    env = make_env(EnvSettings("Pong"))
    expert = LookaheadExpert(env, deterministic_plans=args.deterministic_plans, replan_every=args.replan_every)
    fresh_pairs, memory_pairs, returns, states, seen, steps = [], [], [], 0, 0, 0
    start = time.perf_counter()
    for episode in range(args.episodes):
        env.reset(seed=args.seed + episode)
        expert.reset()
        total, done = 0.0, False
        while not done and (args.max_states is None or states < args.max_states):
            along, towards, _ = expert.positions()
            previous = expert.previous_towards  # the ball's position at the expert's last call, one step ago
            if previous and along and towards > previous and expert.is_close(towards):
                seen += 1
                if seen % args.stride == 0:
                    state, memory = expert.ale.cloneState(), {key: getattr(expert, key) for key in MEMORY}
                    fresh = _actions(expert, state, memory, args.samples, fresh=True)
                    own = _actions(expert, state, memory, args.samples, fresh=False)
                    fresh_pairs += [a == b for a, b in itertools.combinations(fresh, 2)]
                    memory_pairs += [a == b for a in own for b in fresh]
                    states += 1
            _, reward, terminated, truncated, _ = env.step(expert())
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        print(f"episode {episode + 1}/{args.episodes}: return {total:+.0f}, {states} states measured", flush=True)
    result = {
        "deterministic_plans": args.deterministic_plans, "replan_every": args.replan_every, "seed": args.seed,
        "episodes": args.episodes, "returns": returns, "states": states, "samples": args.samples,
        "fresh_self_agreement": float(np.mean(fresh_pairs)) if fresh_pairs else float("nan"),
        "memory_agreement": float(np.mean(memory_pairs)) if memory_pairs else float("nan"),
        "seconds": time.perf_counter() - start, "steps": steps,
    }
    print(f"{states} planned-phase states: fresh self-agreement {result['fresh_self_agreement']:.3f}, "
          f"memory agreement {result['memory_agreement']:.3f} (deterministic plans {args.deterministic_plans}, "
          f"replan every {args.replan_every})")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
