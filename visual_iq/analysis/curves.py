"""Learning curves read back from a run's TensorBoard events: for `visual-iq curve` and the benchmarks.

A directory without events or without an evaluation yet raises `RunError` naming it.
"""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visual_iq.errors import RunError


def run_scalars(run_dir: str | Path) -> EventAccumulator:
    """Every scalar a run logged (all points, not a sample), loaded; `RunError` if it holds no events."""
    run_dir = Path(run_dir)
    if not list(run_dir.glob("events.out.tfevents.*")):
        raise RunError(f"{run_dir}: no TensorBoard event files here (expected runs/<name>/version_N)")
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def learning_curve(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of ``{"step", "minutes", "return_mean", "return_std"}`` from a run's event files, and
    ``env_steps`` for online runs that logged it (``eval/env_steps``).

    ``step`` is the number of updates done when the evaluation ran (``eval/updates``).
    """
    accumulator = run_scalars(run_dir)
    scalars = accumulator.Tags()["scalars"]
    if "eval/return_mean" not in scalars:
        raise RunError(f"{run_dir}: no eval/return_mean logged yet (no evaluation has run)")
    start = min(accumulator.Scalars(tag)[0].wall_time for tag in scalars)
    stds = {event.step: event.value for event in accumulator.Scalars("eval/return_std")}
    updates = {event.step: event.value for event in accumulator.Scalars("eval/updates")} if "eval/updates" in scalars else {}
    env_steps = {event.step: event.value for event in accumulator.Scalars("eval/env_steps")} \
        if "eval/env_steps" in scalars else {}
    return [
        {"step": int(updates.get(event.step, event.step)), "minutes": (event.wall_time - start) / 60.0,
         "return_mean": event.value, "return_std": stds.get(event.step, float("nan")),
         **({"env_steps": int(env_steps[event.step])} if event.step in env_steps else {})}
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


def env_steps_at_evaluations(run_dir: str | Path) -> dict[int, float]:
    """Update index -> env steps taken so far (online runs log ``rollout/env_steps``; else empty)."""
    accumulator = run_scalars(run_dir)
    if "rollout/env_steps" not in accumulator.Tags()["scalars"]:
        return {}
    return {event.step: event.value for event in accumulator.Scalars("rollout/env_steps")}
