"""IQ-Learn against BC (offline) and SQIL (online) on the same demos, network, budget, seeds and eval.

    python benchmarks/learning.py [--demos 1 5 20] [--updates 30000] [--online-updates 30000]
        [--eval-every 5000] [--eval-episodes 10] [--seeds 0] [--parallel 2] [--only offline|online]
        [--methods iq bc sqil]
        [--targets 0 10] [--no-train]

Arms: offline IQ and offline BC with each number of demo episodes (`--offline-config`, default
conf/pong.yaml); online IQ and online SQIL with all of them (`--online-config`, default
conf/pong_online.yaml; since it took the 120 demos the two defaults read other demos, so give both
configs, e.g. ``--offline-config conf/pong_online.yaml``, or ``--only``). Every arm is one
`visual-iq fit` process, its TensorBoard run in ``--runs/<arm>/version_0`` and its output in
``--runs/<arm>.log``; ``--parallel`` arms run at once, each with ``--threads`` CPU threads
(default: cores / parallel, so they share the machine instead of oversubscribing it). An arm
whose run already finished its budget is read back, not trained again (``--retrain`` forces it);
one that stopped short of it is resumed
from its ``last.ckpt`` into the next ``version_N`` (a bigger budget trains finished arms on), and
an arm's curve is read across its versions, so an interrupted benchmark loses nothing;
a run trained past the budget is read up to it (nothing in training depends on ``max_steps``, so
its first N updates are those of an N-update run). ``--no-train`` trains nothing and reports the
arms found under ``--runs`` (runs trained elsewhere, e.g. by benchmarks/device/run.sh on a GPU);
arms not there are left out.

It then measures the random policy's return (``--eval-episodes`` episodes per seed, on the same
env settings and episode seeds as the arms' evaluations) and takes the expert's from the demos (the expert's own recorded
episodes), and writes ``--out``.json (every arm's curve, final and best return, expert-normalised
return = (agent - random) / (expert - random), and for online arms the env steps when the return
first reached each of ``--targets``), every arm's mean ± std across its seeds, plus
``--out``_offline.png / _online.png. Markdown tables of both are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from visual_iq.cli import model_from_config
from visual_iq.analysis.curves import chain_curves, env_steps_at_evaluations, learning_curve, plot_curves
from visual_iq.data.demos import iter_episodes
from visual_iq.env.envs import num_actions
from visual_iq.errors import RunError
from visual_iq.train.evaluation import VALIDATION_SEED, evaluate
from visual_iq.files import atomic_write_text
from visual_iq.train.rollout import uniform_policy


@dataclass(frozen=True)
class Arm:
    method: str  # iq | bc | sqil
    online: bool
    demos: int
    seed: int

    @property
    def name(self) -> str:
        return f"{'online' if self.online else 'offline'}-{self.method}-{self.demos}demos-seed{self.seed}"


def arms_to_run(demo_counts: list[int], seeds: list[int], only: str | None,
                methods: tuple[str, ...] = ("iq", "bc", "sqil")) -> list[Arm]:
    arms = []
    for seed in seeds:
        if only != "online":
            arms += [Arm(method, False, count, seed) for count in demo_counts for method in ("iq", "bc")]
        if only != "offline":
            arms += [Arm(method, True, max(demo_counts), seed) for method in ("iq", "sqil")]
    return [arm for arm in arms if arm.method in methods]


def fit_command(arm: Arm, config: str, updates: int, args: argparse.Namespace, version: int = 0,
                resume_from: Path | None = None) -> list[str]:
    """The arm's ``visual-iq fit`` command line, into ``version``; from ``resume_from``'s checkpoint if given."""
    command = [
        sys.executable, "-m", "visual_iq", "fit", "--config", config,
        "--seed_everything", str(arm.seed), "--model.seed", str(arm.seed),
        "--model.objective.method", arm.method, "--model.data.num_demos", str(arm.demos),
        "--trainer.max_steps", str(updates), "--trainer.val_check_interval", str(args.eval_every),
        "--trainer.enable_progress_bar", "false", "--threads", str(args.threads),
        "--model.evaluation.episodes", str(args.eval_episodes), "--model.evaluation.video", "false",
        "--trainer.logger.init_args.save_dir", args.runs, "--trainer.logger.init_args.name", arm.name,
        "--trainer.logger.init_args.version", str(version),
    ]
    if resume_from is not None:
        command += ["--ckpt_path", str(resume_from)]
    # explicit either way: an offline arm may read the online config (then it must not act)
    command += ["--model.online.enabled", "true" if arm.online else "false"]  # the config says which IQ variant
    return command + setting_flags(args.set)


def setting_flags(settings: list[str], prefix: str = "") -> list[str]:
    """``--set KEY=VALUE`` settings whose key starts with ``prefix``, as ``--KEY=VALUE`` CLI flags."""
    pairs = (setting.partition("=") for setting in settings)
    return [f"--{key}={value}" for key, _, value in pairs if key.startswith(prefix)]


def version_number(directory: Path) -> int | None:
    """N of a ``version_N`` run directory (None for any other name)."""
    suffix = directory.name.removeprefix("version_")
    return int(suffix) if suffix != directory.name and suffix.isdigit() else None


def run_dirs(arm: Arm, runs: str) -> list[Path]:
    """The arm's run and the runs that resumed it: ``version_0``, ``version_1``, ... in order."""
    versions = [d for d in (Path(runs) / arm.name).glob("version_*") if version_number(d) is not None]
    return sorted(versions, key=version_number)


def arm_curve(arm: Arm, runs: str) -> list[dict[str, float]]:
    """The arm's evaluations across its versions (`RunError` if none has any); minutes add up."""
    curves: list[list[dict[str, float]]] = []
    for directory in run_dirs(arm, runs):
        try:
            rows = learning_curve(directory)
        except RunError:
            continue  # a resume that stopped before its first evaluation
        done = curves[-1][-1]["step"] if curves else -1
        if rows := [row for row in rows if row["step"] > done]:
            curves.append(rows)
    if not curves:
        raise RunError(f"{Path(runs) / arm.name}: no evaluation logged in any version_N")
    return chain_curves(curves)


def arm_env_steps(arm: Arm, runs: str) -> dict[int, float]:
    """Update index -> env steps, across the arm's versions."""
    steps: dict[int, float] = {}
    for directory in run_dirs(arm, runs):
        try:
            steps.update(env_steps_at_evaluations(directory))
        except RunError:
            continue
    return steps


def finished(arm: Arm, runs: str, updates: int) -> bool:
    """True if the arm's run already evaluated after its whole update budget."""
    try:
        curve = arm_curve(arm, runs)
    except RunError:
        return False
    return curve[-1]["step"] >= updates


def curve_within_budget(arm: Arm, runs: str, updates: int) -> list[dict[str, float]]:
    """The arm's evaluations up to ``updates`` (a longer run of the same arm is read up to the budget)."""
    return [row for row in arm_curve(arm, runs) if row["step"] <= updates]


def resume_point(arm: Arm, runs: str) -> tuple[int, Path | None]:
    """The version to train into and the checkpoint to resume from: the newest ``last.ckpt`` of the
    arm's versions (into the version after the newest), or nothing (a fresh run into version_0)."""
    versions = run_dirs(arm, runs)
    saved = [d / "checkpoints" / "last.ckpt" for d in versions if (d / "checkpoints" / "last.ckpt").is_file()]
    if saved:  # the newest that saved one (a resume that died before saving loses nothing either)
        return version_number(versions[-1]) + 1, saved[-1]
    return 0, None


def train(arm: Arm, config: str, updates: int, args: argparse.Namespace) -> tuple[Arm, int]:
    if finished(arm, args.runs, updates) and not args.retrain:
        print(f"{arm.name}: already trained, reading it back", flush=True)
        return arm, 0
    version, resume_from = (0, None) if args.retrain else resume_point(arm, args.runs)
    if resume_from is None:
        shutil.rmtree(Path(args.runs) / arm.name, ignore_errors=True)
    log = Path(args.runs) / f"{arm.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    what = f"resuming {resume_from}" if resume_from else "training"
    print(f"{arm.name}: {what} ({updates:,} updates) -> {log}", flush=True)
    with open(log, "a" if resume_from else "w") as output:
        code = subprocess.call(fit_command(arm, config, updates, args, version, resume_from), stdout=output,
                               stderr=subprocess.STDOUT, env=environment)
    print(f"{arm.name}: exit {code} after {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return arm, code


def summarise(arm: Arm, curve: list[dict[str, float]], random_return: float, expert_return: float,
              targets: list[float], env_steps: dict[int, float]) -> dict:
    def normalised(value: float) -> float:
        return (value - random_return) / (expert_return - random_return)

    final, best = curve[-1], max(curve, key=lambda row: row["return_mean"])
    summary = {
        "arm": arm.name, "method": arm.method, "online": arm.online, "demos": arm.demos, "seed": arm.seed,
        "updates": final["step"], "minutes": final["minutes"],
        "final_return_mean": final["return_mean"], "final_return_std": final["return_std"],
        "final_normalised": normalised(final["return_mean"]),
        "best_return_mean": best["return_mean"], "best_updates": best["step"],
        "curve": curve,
    }
    if arm.online:
        logged = sorted(env_steps)
        for row in curve:  # env steps at each evaluation: the last value logged at or before it
            before = [step for step in logged if step <= row["step"]]
            row["env_steps"] = env_steps[before[-1]] if before else None
        summary["env_steps_to"] = {}
        for target in targets:
            reached = [row for row in curve if row["return_mean"] >= target]
            summary["env_steps_to"][f"{target:g}"] = reached[0]["env_steps"] if reached else None
    return summary


def across_seeds(summaries: list[dict]) -> list[dict]:
    """Per arm without its seed: mean and std across seeds of the final and best returns."""
    groups: dict[str, list[dict]] = {}
    for summary in summaries:
        groups.setdefault(summary["arm"].rsplit("-seed", 1)[0], []).append(summary)
    rows = []
    for name, members in groups.items():
        finals = [m["final_return_mean"] for m in members]
        bests = [m["best_return_mean"] for m in members]
        rows.append({"arm": name, "seeds": [m["seed"] for m in members],
                     "updates": [m["updates"] for m in members],
                     "final_return_mean": float(np.mean(finals)), "final_return_std": float(np.std(finals)),
                     "final_normalised": float(np.mean([m["final_normalised"] for m in members])),
                     "best_return_mean": float(np.mean(bests)), "best_return_std": float(np.std(bests))})
    return rows


def reference_config(offline_config: str, online_config: str, only: str | None) -> str:
    """The config whose game and demos give the random and expert returns: the online one for
    ``--only online``, else the offline one, which must then have the online one's game and demos."""
    if only == "online":
        return online_config
    if only is None and online_config != offline_config:
        offline, online = (yaml.safe_load(Path(path).read_text())["model"] for path in (offline_config, online_config))
        def game_and_demos(model: dict) -> tuple:
            return model.get("env", {}).get("game"), model.get("data", {}).get("demos")

        if game_and_demos(offline) != game_and_demos(online):
            raise ValueError(f"{offline_config} and {online_config} have other games or demos; "
                             "benchmark them one at a time (--only offline, --only online)")
    return offline_config


def measure_random_return(settings, episodes: int, seed: int) -> float:
    """Mean return of uniformly random actions on the episodes a run with ``seed`` validates on."""
    actions = num_actions(settings)
    return evaluate(uniform_policy(actions, seed), settings, episodes, seed=VALIDATION_SEED + seed).mean


def table(summaries: list[dict], targets: list[float]) -> str:
    lines = ["| arm | updates | minutes | final return (mean ± std) | normalised | best (at updates) | "
             + " | ".join(f"env steps to {target:+g}" for target in targets) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(targets)]
    for s in summaries:
        cells = []
        for target in targets:
            steps = s.get("env_steps_to", {}).get(f"{target:g}")
            cells.append(("not reached" if steps is None else f"{steps:,.0f}") if s["online"] else "")
        lines.append(
            f"| {s['arm']} | {s['updates']:,} | {s['minutes']:.1f} | {s['final_return_mean']:+.1f} ± "
            f"{s['final_return_std']:.1f} | {s['final_normalised']:.2f} | {s['best_return_mean']:+.1f} "
            f"({s['best_updates']:,}) | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def seeds_table(rows: list[dict]) -> str:
    lines = ["| arm | seeds | final return, mean ± std across seeds | normalised | best return across seeds |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {len(r['seeds'])} | {r['final_return_mean']:+.1f} ± {r['final_return_std']:.1f} "
                     f"| {r['final_normalised']:.2f} | {r['best_return_mean']:+.1f} ± {r['best_return_std']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/learning.py", description=__doc__.splitlines()[0])
    parser.add_argument("--offline-config", default="conf/pong.yaml")
    parser.add_argument("--online-config", default="conf/pong_online.yaml")
    parser.add_argument("--demos", type=int, nargs="+", default=[1, 5, 20], help="demo episodes per offline arm")
    parser.add_argument("--updates", type=int, default=30_000, help="updates per offline arm")
    parser.add_argument("--online-updates", type=int, default=30_000, help="updates per online arm")
    parser.add_argument("--eval-every", type=int, default=5_000, help="updates between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", choices=("offline", "online"), default=None)
    parser.add_argument("--methods", nargs="+", choices=("iq", "bc", "sqil"), default=["iq", "bc", "sqil"],
                        help="only these methods' arms (e.g. train on one baseline alone)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.0, 10.0],
                        help="online: report the env steps at which the return first reached each of these")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: report the arms already under --runs (those missing are left out)")
    parser.add_argument("--parallel", type=int, default=2, help="arms trained at once")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per arm (default: cores / --parallel, at least 1)")
    parser.add_argument("--runs", default="runs/learning", help="TensorBoard runs and logs of the arms")
    parser.add_argument("--out", default="research/results/learning", help="writes OUT.json, OUT_offline.png, OUT_online.png")
    parser.add_argument("--retrain", action="store_true", help="train arms again even if already finished")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra CLI setting for every arm, e.g. model.network=small (repeatable)")
    args = parser.parse_args(argv)
    if args.threads is None:  # arms with default threads each took ~5x longer side by side (16-core GPU machine)
        args.threads = max(1, (os.cpu_count() or 1) // args.parallel)

    try:  # before anything is trained
        reference = reference_config(args.offline_config, args.online_config, args.only)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    arms = arms_to_run(args.demos, args.seeds, args.only, tuple(args.methods))
    configs = {False: args.offline_config, True: args.online_config}
    budgets = {False: args.updates, True: args.online_updates}
    failed: list[str] = []
    if args.no_train:
        missing = [arm.name for arm in arms if not run_dirs(arm, args.runs)]
        if missing:
            print(f"not under {args.runs}, left out: {', '.join(missing)}", flush=True)
        arms = [arm for arm in arms if arm.name not in missing]
        if not arms:
            print(f"error: no arm's run is under {args.runs}", file=sys.stderr)
            return 1
    else:
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            outcomes = list(pool.map(lambda arm: train(arm, configs[arm.online], budgets[arm.online], args), arms))
        failed = [arm.name for arm, code in outcomes if code != 0]
    if failed:
        print(f"error: these arms failed (see their logs in {args.runs}): {', '.join(failed)}", file=sys.stderr)
        return 1

    # the expert's return is that of the demos the arms trained on (--set model.data.demos=... included)
    model = model_from_config(reference, setting_flags(args.set, prefix="model."))
    demos_dir = model.data.demos
    # one episode at a time: 120 Pong demos are ~6 GB of frames
    expert_return = float(np.mean([episode.episode_return for episode in iter_episodes(demos_dir)]))
    random_returns = {seed: measure_random_return(model.settings, args.eval_episodes, seed) for seed in args.seeds}
    random_return = float(np.mean(list(random_returns.values())))
    summaries = []
    for arm in arms:
        env_steps = arm_env_steps(arm, args.runs) if arm.online else {}
        curve = curve_within_budget(arm, args.runs, budgets[arm.online])
        summaries.append(summarise(arm, curve, random_return, expert_return, args.targets, env_steps))
    seeds = across_seeds(summaries)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "random_return": random_return, "random_return_per_seed": random_returns, "expert_return": expert_return, "expert_demos": demos_dir,
        "eval_episodes": args.eval_episodes, "offline_config": args.offline_config,
        "online_config": args.online_config, "updates": args.updates, "online_updates": args.online_updates,
        "settings": args.set, "arms": summaries, "across_seeds": seeds,
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2))
    for online, suffix in ((False, "offline"), (True, "online")):
        curves = {s["arm"]: s["curve"] for s in summaries if s["online"] == online}
        if curves:
            plot_curves(curves, f"{out}_{suffix}.png")
    print(f"random policy: {random_return:+.2f}; expert (demos {demos_dir}): {expert_return:+.2f}")
    print(table(summaries, args.targets))
    print()
    print(seeds_table(seeds))
    print(f"wrote {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
