"""``python tools/record.py --source {human,expert,agent} --game Pong --episodes N --out DIR``."""

from __future__ import annotations

import argparse
import sys

from visual_iq.demos import DemoError
from visual_iq.envs import EnvSettings, EnvSettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/record.py",
        description="Record Atari demonstrations, one compressed file per finished episode.",
    )
    parser.add_argument("--source", choices=("human", "expert", "agent"), required=True,
                        help="human: play with the keyboard; expert: scripted look-ahead expert "
                             "(Pong, Breakout); agent: a trained checkpoint (--ckpt)")
    parser.add_argument("--game", default=None,
                        help="Pong, ALE/Pong-v5 or PongNoFrameskip-v4 style (default: Pong; agent: the checkpoint's)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes to record (default: 1; human: until the window is closed)")
    parser.add_argument("--out", required=True, help="directory; episodes are added after existing ones")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--sticky", type=float, default=0.25, help="sticky-action probability")
    parser.add_argument("--noop-max", type=int, default=30, help="random no-ops after reset")
    parser.add_argument("--fps", type=int, default=15, help="human: agent steps per second (15 = real time)")
    parser.add_argument("--ckpt", default=None, help="agent: checkpoint path")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="expert: probability of executing a random action instead of the expert's "
                             "(the expert's action is recorded; DART-style recovery demos)")
    args = parser.parse_args(argv)
    try:
        if args.source == "agent":
            if args.ckpt is None:
                parser.error("--source agent needs --ckpt PATH")
            from visual_iq.recording import record_agent

            record_agent(args.ckpt, args.out, episodes=args.episodes or 1, seed=args.seed, game=args.game,
                         sticky_actions=args.sticky, noop_max=args.noop_max)
            return 0
        settings = EnvSettings(args.game or "Pong", sticky_actions=args.sticky, noop_max=args.noop_max)
        if args.source == "human":
            from visual_iq.recording import record_human

            record_human(settings, args.out, episodes=args.episodes, seed=args.seed, fps=args.fps)
        else:
            from visual_iq.recording import record_expert

            record_expert(settings, args.out, episodes=args.episodes or 1, seed=args.seed,
                          action_noise=args.action_noise)
    except (DemoError, EnvSettingsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished episodes are saved", file=sys.stderr)
        return 130
    return 0
