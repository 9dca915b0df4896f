"""``visual-iq curve RUN_DIR [RUN_DIR ...] [--plot curve.png]``: evaluation learning curves.

Prints, for the first run, one row per evaluation: updates (and env steps, online), wall-clock minutes since the run's
first logged event, and ``eval/return_mean`` ± ``eval/return_std`` (Markdown, or JSON with
``--json``); ``--plot`` draws every run's curve against updates and wall time into a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys

from visual_iq.analysis.curves import chain_curves, learning_curve, plot_curves
from visual_iq.errors import VisualIQError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visual-iq curve", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="+", help="run directories, e.g. runs/pong/version_0 (the first is printed)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--plot", default=None, help="also save a PNG of every run's curve here")
    parser.add_argument("--chain", action="store_true",
                        help="the runs are one training resumed with --ckpt_path: join them into one curve, "
                             "each run's minutes counted from the end of the one before")
    args = parser.parse_args(argv)
    try:
        loaded = [learning_curve(run_dir) for run_dir in args.run_dir]
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.chain:
        curves = {" + ".join(args.run_dir): chain_curves(loaded)}
    else:
        curves = dict(zip(args.run_dir, loaded))
    rows = next(iter(curves.values()))
    if args.plot:
        plot_curves(curves, args.plot)
    if args.json:
        print(json.dumps(rows))
        return 0
    with_env_steps = all("env_steps" in row for row in rows)
    print("| updates |" + (" env steps |" if with_env_steps else "") + " wall time (min) | eval return (mean ± std) |")
    print("|---:|" + ("---:|" if with_env_steps else "") + "---:|---:|")
    for row in rows:
        env_steps = f" {row['env_steps']:,} |" if with_env_steps else ""
        print(f"| {row['step']:,} |{env_steps} {row['minutes']:.1f} | {row['return_mean']:+.1f} ± {row['return_std']:.1f} |")
    return 0
