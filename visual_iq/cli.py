"""``visual-iq``: LightningCLI over `IQLearn` (fit, validate, test, --print_config, --help).

Bad input (a demo directory, a checkpoint, a setting) ends in one line on stderr and exit code 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from visual_iq.algo.agent import read_checkpoint
from visual_iq.train.allocator import keep_freed_memory
from visual_iq.train.averaging import EMA  # noqa: F401  (imported so that --trainer.callbacks+=EMA resolves)
from visual_iq.env.envs import EnvSettings
from visual_iq.errors import CheckpointError, ConfigError, VisualIQError
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS, IQLearn
from visual_iq.train.warm_start import WarmStart

TRAINER_DEFAULTS = {
    **ENDLESS_STREAM_TRAINER_FLAGS,
    "val_check_interval": 5_000,
    "log_every_n_steps": 50,
    "accelerator": "auto",
    "devices": 1,
}


EVALUATION_OPTIONS = ("env.sticky_actions", "env.noop_max", "env.fire_on_new_life", "env.terminal_on_life_loss",
                      "evaluation.episodes", "evaluation.video", "evaluation.reward_correlation")
"""Model options that a command line may still set with ``--ckpt_path``: they change the envs the
agent plays in, not its network (e.g. testing a checkpoint with sticky actions off)."""

SCHEDULE_OPTIONS = ("optim.lr_drop_at", "optim.lr_drop_to")
"""Model options a resumed fit may still set: when its learning rate drops, so a run can be trained
on past its plan (``--ckpt_path last.ckpt --trainer.max_steps 260000 --model.optim.lr_drop_at 200000 ...``)."""

ACTING_OPTIONS = ("online.explore",)
"""Model options a resumed fit may still set: how the agent acts while collecting (e.g. greedily from here on)."""

OVERRIDABLE_OPTIONS = EVALUATION_OPTIONS + SCHEDULE_OPTIONS + ACTING_OPTIONS


class VisualIQCLI(LightningCLI):
    """LightningCLI with ``--threads``, ``--keep_freed_memory`` and ``--warm_start`` settings that checks a ``--ckpt_path``
    before Lightning reads it.

    Lightning replaces the config's model settings with the checkpoint's own; a checkpoint of
    another game than the config's would then be evaluated silently on its own game. This refuses
    it, naming both, and turns an unreadable file into one clear error. Of the ``--model.*`` options
    given on the command line, the `EVALUATION_OPTIONS`, `SCHEDULE_OPTIONS` and `ACTING_OPTIONS` still apply; any other is
    reported as ignored.
    """

    _overrides: dict[str, object] = {}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--threads", type=int | None, default=None,
            help="CPU threads of this run: torch's intra-op threads, and the vector envs step on up to as many "
                 "(default: torch's own, i.e. OMP_NUM_THREADS or the number of cores; under DDP "
                 "cores / processes). For N runs side by side give each cores / N.")
        parser.add_argument(
            "--keep_freed_memory", type=bool, default=True,
            help="keep freed host memory in the process (glibc malloc) instead of faulting it in again every "
                 "update: measured 1.27x faster on 2 threads of a 2-core AMD EPYC; false: malloc's defaults")
        parser.add_argument(
            "--warm_start", type=str | None, default=None,
            help="fit only: start from this checkpoint's network (a training checkpoint or an exported agent; "
                 "same observations and network) with the config's settings and a fresh optimizer and step "
                 "count; --ckpt_path instead resumes a run as it was")

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        for name, value in self._overrides.items():  # after Lightning read the checkpoint's
            config.model[name] = value
        if config.get("keep_freed_memory", True):
            keep_freed_memory()
        threads = config.get("threads")
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"--threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
            os.environ["OMP_NUM_THREADS"] = str(threads)  # DDP's processes: Lightning then keeps it
        if config.get("warm_start") and subcommand != "fit":
            raise ConfigError(f"--warm_start starts a fit from a checkpoint's network; for {subcommand} use --ckpt_path")

    def before_fit(self) -> None:
        warm_start = self.config["fit"].get("warm_start")
        if warm_start:
            self.trainer.callbacks.append(WarmStart(warm_start))

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path:
            return
        checkpoint = read_checkpoint(ckpt_path)
        saved_game = EnvSettings.from_dict(checkpoint["env_settings"]).game
        wanted_game = EnvSettings(self.config[subcommand].model.env.game).game
        if saved_game != wanted_game:
            raise CheckpointError(f"{ckpt_path} is a {saved_game} agent but the config trains and evaluates "
                                  f"{wanted_game}: pass a {wanted_game} checkpoint or the {saved_game} config")
        given = _model_options_given(args if args is not None else sys.argv[1:])
        model = self.config[subcommand].model
        self._overrides = {name: model[name] for name in given if name in OVERRIDABLE_OPTIONS}
        ignored = sorted(set(given) - set(OVERRIDABLE_OPTIONS))
        if ignored:
            print(f"visual-iq: warning: with --ckpt_path the checkpoint's settings apply, so these are ignored: "
                  f"{', '.join('--model.' + name for name in ignored)} (still applied: --model.{{"
                  f"{','.join(OVERRIDABLE_OPTIONS)}}})", file=sys.stderr)


def _model_options_given(args: object) -> list[str]:
    """Names of the ``--model.NAME`` options on a command line (``--model.NAME VALUE`` or ``=VALUE``)."""
    if not isinstance(args, (list, tuple)):
        return []
    return [str(arg)[len("--model."):].split("=")[0] for arg in args if str(arg).startswith("--model.")]


def model_from_config(config: str, overrides: Sequence[str] = ()) -> IQLearn:
    """The `IQLearn` a config file describes, as ``fit`` would build it (for the benchmarks);
    ``overrides`` are further command-line settings, e.g. ``["--model.data.num_demos", "5"]``."""
    return VisualIQCLI(IQLearn, run=False, trainer_defaults=TRAINER_DEFAULTS,
                       args=["--config", config, *overrides, "--trainer.logger", "false"]).model


def main(args: list[str] | None = None) -> int:
    try:
        VisualIQCLI(IQLearn, trainer_defaults=TRAINER_DEFAULTS, save_config_kwargs={"overwrite": True}, args=args)
    except VisualIQError as error:
        print(f"visual-iq: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
