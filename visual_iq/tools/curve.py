"""``python tools/curve.py RUN_DIR [RUN_DIR ...] [--plot curve.png]``: evaluation learning curves.

Prints, for the first run, one row per evaluation: updates, wall-clock minutes since the run's
first logged event, and ``eval/return_mean`` ± ``eval/return_std`` (Markdown, or JSON with
``--json``); ``--plot`` draws every run's curve against updates and wall time into a PNG.
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


def chain_curves(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """One curve from runs that resumed each other: later runs' minutes follow the earlier ones'."""
    joined: list[dict[str, float]] = []
    for rows in curves:
        offset = joined[-1]["minutes"] if joined else 0.0
        joined += [{**row, "minutes": row["minutes"] + offset} for row in rows]
    return joined


def plot_curves(curves: dict[str, list[dict[str, float]]], out: str | Path) -> Path:
    """PNG of eval return against updates and against wall-clock minutes, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, rows in curves.items():
        means = [row["return_mean"] for row in rows]
        axes[0].plot([row["step"] for row in rows], means, marker="o", label=name)
        axes[1].plot([row["minutes"] for row in rows], means, marker="o", label=name)
    axes[0].set_xlabel("updates")
    axes[1].set_xlabel("wall-clock minutes")
    axes[0].set_ylabel("eval return (mean)")
    for axis in axes:
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/curve.py", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="+", help="run directories, e.g. runs/pong/version_0 (the first is printed)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--plot", default=None, help="also save a PNG of every run's curve here")
    parser.add_argument("--chain", action="store_true",
                        help="the runs are one training resumed with --ckpt_path: join them into one curve, "
                             "each run's minutes counted from the end of the one before")
    args = parser.parse_args(argv)
    try:
        loaded = [learning_curve(run_dir) for run_dir in args.run_dir]
    except (FileNotFoundError, ValueError) as error:
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
    print("| updates | wall time (min) | eval return (mean ± std) |")
    print("|---:|---:|---:|")
    for row in rows:
        print(f"| {row['step']:,} | {row['minutes']:.1f} | {row['return_mean']:+.1f} ± {row['return_std']:.1f} |")
    return 0
