"""``python tools/curve.py RUN_DIR``: the evaluation learning curve of a run, read from TensorBoard.

Prints one row per evaluation: updates, wall-clock minutes since the run's first logged event,
and ``eval/return_mean`` ± ``eval/return_std`` (Markdown, or JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def learning_curve(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of ``{"step", "minutes", "return_mean", "return_std"}`` from a run's event files.

    ``step`` is the number of updates done when the evaluation ran (``eval/updates``).
    """
    run_dir = Path(run_dir)
    if not list(run_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"{run_dir}: no TensorBoard event files here (expected runs/<name>/version_N)")
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    if "eval/return_mean" not in scalars:
        raise ValueError(f"{run_dir}: no eval/return_mean logged yet (no evaluation has run)")
    start = min(accumulator.Scalars(tag)[0].wall_time for tag in scalars)
    stds = {event.step: event.value for event in accumulator.Scalars("eval/return_std")}
    updates = {event.step: event.value for event in accumulator.Scalars("eval/updates")} if "eval/updates" in scalars else {}
    return [
        {"step": int(updates.get(event.step, event.step)), "minutes": (event.wall_time - start) / 60.0,
         "return_mean": event.value, "return_std": stds.get(event.step, float("nan"))}
        for event in accumulator.Scalars("eval/return_mean")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/curve.py", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory, e.g. runs/pong/version_0")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = learning_curve(args.run_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| updates | wall time (min) | eval return (mean ± std) |")
    print("|---:|---:|---:|")
    for row in rows:
        print(f"| {row['step']:,} | {row['minutes']:.1f} | {row['return_mean']:+.1f} ± {row['return_std']:.1f} |")
    return 0
