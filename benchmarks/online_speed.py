"""Online learning speed through `visual-iq fit`: updates/s and env steps/s of conf/pong_online.yaml.

    python benchmarks/online_speed.py [--device cuda] [--seconds 45] [--variants loop whole8] \
        [--threads 4] [--json research/results/online_speed.json]

Each variant is one real `visual-iq fit` of the online config (the shipped 20 Pong demos, no
evaluation, no checkpoints) stopped by Lightning's ``max_time``; its rates are read back from the
run's TensorBoard events (``rollout/env_steps`` at each logged update count), from the first event
after a quarter of the run (start-up, the random warm-up and any graph recording left out) to the
last. The config acts in 8 envs stepping once every 8 updates: one env step per update, as the
official recipe.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from visual_iq.analysis.curves import run_scalars
from visual_iq.files import atomic_write_text

VARIANTS: dict[str, list[str]] = {
    "loop": [],  # Lightning's loop, one update per training step (on a GPU the loss from CUDA graphs)
    "whole8": ["--model.speed.whole_update", "true", "--model.speed.updates_per_step", "8"],
    "whole8_nature": ["--model.speed.whole_update", "true", "--model.speed.updates_per_step", "8", "--model.network", "nature"],
    # Still one env step per update and a 50k replay, with more envs stepping more rarely: acting's
    # network call and the vector env's step are paid once per num_envs updates.
    "whole8_envs32": ["--model.speed.whole_update", "true", "--model.speed.updates_per_step", "8", "--model.online.num_envs", "32",
                      "--model.online.env_steps_per_update", "0.03125", "--model.online.buffer_capacity", "1563"],
    "whole8_envs64": ["--model.speed.whole_update", "true", "--model.speed.updates_per_step", "8", "--model.online.num_envs", "64",
                      "--model.online.env_steps_per_update", "0.015625", "--model.online.buffer_capacity", "782"],
}
LOG_EVERY = 200  # updates between logged metrics (a multiple of every variant's updates_per_step)


def run_variant(name: str, seconds: int, device: str, threads: int, demos: str, workdir: Path) -> dict:
    """One `visual-iq fit` of ``seconds`` of training; returns its rates, or its error's last lines."""
    accelerator = "gpu" if device == "cuda" else "cpu"
    command = [sys.executable, "-m", "visual_iq", "fit", "--config", "conf/pong_online.yaml", "--threads", str(threads),
               "--model.data.demos", f"[{demos}]", "--model.evaluation.video", "false",
               "--trainer.max_time", f"00:00:{seconds // 60:02d}:{seconds % 60:02d}",
               "--trainer.limit_val_batches", "0", "--trainer.enable_checkpointing", "false",
               "--trainer.enable_progress_bar", "false", "--trainer.accelerator", accelerator,
               "--trainer.log_every_n_steps", str(LOG_EVERY),
               "--trainer.logger.init_args.save_dir", str(workdir), "--trainer.logger.init_args.name", name,
               "--trainer.logger.init_args.version", "0", *VARIANTS[name]]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        return {"error": (finished.stdout + finished.stderr)[-3000:], "wall_s": wall}
    rows = run_scalars(workdir / name / "version_0").Scalars("rollout/env_steps")
    if len(rows) < 3:
        return {"error": f"only {len(rows)} logged update counts in {seconds} s: give it more --seconds", "wall_s": wall}
    first_time = rows[0].wall_time
    span = rows[-1].wall_time - first_time
    start = next(row for row in rows[:-1] if row.wall_time - first_time >= span / 4)
    end = rows[-1]
    elapsed = end.wall_time - start.wall_time
    return {"updates": end.step, "wall_s": wall, "measured_s": elapsed,
            "updates_per_s": (end.step - start.step) / elapsed,
            "env_steps_per_s": (end.value - start.value) / elapsed,
            "options": VARIANTS[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seconds", type=int, default=45, help="training time of each variant (max_time)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each run (--threads)")
    parser.add_argument("--demos", default="demos/pong", help="the demo folder every run learns from")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    results: dict = {"device": args.device, "threads": args.threads, "seconds": args.seconds, "variants": {}}
    print(f"online IQ-Learn (conf/pong_online.yaml, {args.demos}) on {args.device}, {args.threads} thread(s), "
          f"{args.seconds} s of training each")
    print("| variant | updates | updates/s | env steps/s | wall s (start-up included) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.variants:
            row = run_variant(name, args.seconds, args.device, args.threads, args.demos, Path(workdir))
            results["variants"][name] = row
            if "error" in row:
                print(f"| {name} | failed: {row['error'].strip().splitlines()[-1]} | | | {row['wall_s']:.0f} |", flush=True)
                print(row["error"], file=sys.stderr)
                continue
            print(f"| {name} | {row['updates']} | {row['updates_per_s']:.0f} | {row['env_steps_per_s']:.0f} "
                  f"| {row['wall_s']:.0f} |", flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))  # makes the folder too


if __name__ == "__main__":
    main()
