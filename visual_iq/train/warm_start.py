"""Start a run from another run's network: fine-tuning, e.g. online IQ-Learn from an offline agent.

``visual-iq fit --config conf/pong_online.yaml --warm_start agents/pong_iq_averaged.ckpt``
trains with the config's settings (objective, online or not, batch size, ...) from the checkpoint's weights, with a
fresh optimizer, step counter and replay. ``--ckpt_path`` instead resumes a run exactly as it was
saved, its own settings included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from visual_iq.env.envs import OBSERVATION_FIELDS, PROTOCOL_FIELDS
from visual_iq.algo.agent import (NETWORK_PREFIX, TARGET_PREFIX, check_checkpoint_settings, network_weights, read_checkpoint,
                             with_target_network)
from visual_iq.errors import CheckpointError


def load_network_weights(network: nn.Module, state_dict: dict[str, Any], prefix: str, source: str) -> None:
    """Copy the ``prefix``-ed weights of a Lightning state dict into ``network``; a network of
    another shape or kind is refused with a `CheckpointError` naming ``source``."""
    try:
        network.load_state_dict(network_weights(state_dict, prefix))
    except RuntimeError as error:
        problem = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise CheckpointError(f"{source}: its network does not fit this config's ({problem})") from None


class WarmStart(L.Callback):
    """Before ``fit`` sets up the optimizer, load the online and target networks of ``checkpoint``
    (a training checkpoint, or an exported agent whose one network seeds both).

    The checkpoint must have been trained on the same observations (`check_checkpoint_settings`)
    with the same network. A run resumed with ``--ckpt_path`` restores its own weights after this,
    so resuming a warm-started run with the same command line works.
    """

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        saved = read_checkpoint(self.checkpoint)
        source = f"warm-start checkpoint {self.checkpoint}"
        saved_network, network = saved["hyper_parameters"]["network"], pl_module.hparams.network
        if saved_network != network:
            raise CheckpointError(f"{source} holds a {saved_network!r} network, this config builds {network!r}: "
                                  f"set --model.network {saved_network}")
        check_checkpoint_settings(saved, pl_module.settings, source, OBSERVATION_FIELDS + PROTOCOL_FIELDS)
        state_dict = with_target_network(saved["state_dict"])
        load_network_weights(pl_module.q_net, state_dict, NETWORK_PREFIX, source)
        load_network_weights(pl_module.target_net, state_dict, TARGET_PREFIX, source)
