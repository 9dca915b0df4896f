"""Valid ranges of the training settings, checked before anything is built."""

from __future__ import annotations

from typing import Any

from visual_iq.errors import ConfigError


def check_hyperparameters(hp: Any) -> None:
    """Refuse settings outside their valid range with a `ConfigError` naming the setting and value."""
    rules = {
        "alpha": hp.alpha > 0, "gamma": 0 <= hp.gamma < 1, "lr": hp.lr > 0, "batch_size": hp.batch_size >= 1,
        "num_demos": hp.num_demos is None or hp.num_demos >= 1,
        "snapshot_every": hp.snapshot_every is None or hp.snapshot_every >= 1,
        "chi2_alpha": hp.chi2_alpha is None or hp.chi2_alpha > 0, "grad_penalty": hp.grad_penalty >= 0,
        "augment_shift": hp.augment_shift >= 0, "target_tau": 0 < hp.target_tau <= 1,
        "target_update_interval": hp.target_update_interval >= 1, "num_envs": hp.num_envs >= 1,
        "env_steps_per_update": hp.env_steps_per_update > 0, "buffer_capacity": hp.buffer_capacity >= 2,
        "learning_starts": hp.learning_starts >= 0, "eval_episodes": hp.eval_episodes >= 1,
        "lr_drop_at": hp.lr_drop_at is None or (hp.lr_drop_at >= 0 and hp.lr_drop_to is not None),
        "lr_drop_to": hp.lr_drop_to is None or (hp.lr_drop_to > 0 and hp.lr_drop_at is not None),
        "updates_per_step": hp.updates_per_step == 1 or (hp.updates_per_step > 1 and hp.whole_update),
    }
    bad = [f"{name}={hp[name]!r}" for name, valid in rules.items() if not valid]
    if bad:
        raise ConfigError("invalid setting(s): " + ", ".join(bad) + " (alpha, lr, chi2_alpha, target_tau, "
                          "env_steps_per_update, lr_drop_to > 0; 0 <= gamma < 1; target_tau <= 1; counts >= 1; "
                          "buffer_capacity >= 2; lr_drop_at and lr_drop_to set together; "
                          "updates_per_step above 1 with whole_update)")
