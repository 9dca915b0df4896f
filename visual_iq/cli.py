"""``visual-iq``: LightningCLI over `IQLearn` (fit, validate, test, --print_config, --help)."""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI

from visual_iq.demos import DemoError
from visual_iq.envs import EnvSettingsError
from visual_iq.module import IQLearn, TrainingDiverged

TRAINER_DEFAULTS = {
    # The batch stream is endless: run length comes from max_steps, validation every N updates.
    "max_epochs": -1,
    "check_val_every_n_epoch": None,
    "val_check_interval": 5_000,
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 50,
    "accelerator": "auto",
    "devices": 1,
}


def main(args: list[str] | None = None) -> int:
    try:
        LightningCLI(
            IQLearn,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except (DemoError, EnvSettingsError, TrainingDiverged, ValueError) as error:
        print(f"visual-iq: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
