"""``visual-iq misses --ckpt PATH --episodes N``: where an agent loses points (Pong, Breakout).

Splits the agent's games into approaches of the ball to its paddle and prints the approaches per
game, the share missed, the agent's agreement with the scripted expert on missed and returned
approaches (before the point where the expert plans the hit, and in the two halves of the close
phase after it), and how many missed approaches the expert saves when it takes over at that point.
``--expert`` instead: the expert's own approaches and miss rate, the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from visual_iq.env.envs import NOOP_MAX, STICKY_ACTIONS, EnvSettings, make_env
from visual_iq.errors import VisualIQError
from visual_iq.files import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visual-iq misses", description=__doc__.splitlines()[0])
    player = parser.add_mutually_exclusive_group(required=True)
    player.add_argument("--ckpt", help="the agent to analyse (a visual-iq checkpoint)")
    player.add_argument("--expert", action="store_true", help="analyse the scripted expert itself (the baseline)")
    parser.add_argument("--game", default="Pong", help="with --expert: Pong or Breakout (default Pong)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to play (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--takeover", type=int, default=3, help="expert play-outs per missed approach (default 3)")
    parser.add_argument("--sticky", type=float, default=STICKY_ACTIONS, help="sticky-action probability")
    parser.add_argument("--noop-max", type=int, default=NOOP_MAX, help="random no-ops after reset")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cut each episode after N agent steps (a quick look)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        from visual_iq.algo.agent import load_agent
        from visual_iq.analysis.misses import play_approaches, summarise
        from visual_iq.record.recorder import greedy_policy

        if args.expert:
            settings, policy = EnvSettings(args.game), None
        else:
            agent = load_agent(args.ckpt)
            settings, policy = agent.settings, greedy_policy(agent)
        settings = dataclasses.replace(settings, sticky_actions=args.sticky, noop_max=args.noop_max)
        if args.max_steps is not None:
            settings = dataclasses.replace(settings, max_episode_frames=args.max_steps * settings.frame_skip)
        env = make_env(settings)
        try:
            approaches, returns = play_approaches(env, policy, episodes=args.episodes, seed=args.seed,
                                                  takeover_samples=args.takeover)
        finally:
            env.close()
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = {"player": "expert" if args.expert else args.ckpt, "seed": args.seed, **summarise(approaches, returns)}
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(f"{result['episodes']} episodes, mean return {_shown(result['mean_return'], '+.2f')}; "
          f"{_shown(result['approaches_per_episode'], '.1f')} approaches per episode, {result['missed']} of "
          f"{result['approaches']} missed ({_shown(result['miss_rate'])})")
    for outcome, share in result["agreement"].items():
        print(f"agreement with the expert on {outcome} approaches: before the close point "
              f"{_shown(share['before_close'])}, close phase first half {_shown(share['close_first_half'])}, "
              f"second half {_shown(share['close_second_half'])}")
    if not args.expert:
        print(f"the expert taking over at the close point saves {_shown(result['takeover_saved'])} of "
              f"{result['takeover_play_outs']} play-outs of the missed approaches")
    return 0


def _shown(value: float | None, spec: str = ".3f") -> str:
    """A figure for the printout; "n/a" where there was nothing to average (None)."""
    return "n/a" if value is None else format(value, spec)
