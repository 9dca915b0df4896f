"""A callback for the DDP test: each process writes to $PROBE_DIR/rank<N>.json what it sampled first (and the
expert rows of every batch, by update), the returns of the games it evaluated on, the weights it ended with, and
the world size."""

import json
import os
from pathlib import Path

import lightning as L
import torch


class RecordFirstBatch(L.Callback):
    def __init__(self) -> None:
        self.record: dict = {}
        self.eval_returns: list = []

    def on_fit_start(self, trainer, pl_module) -> None:
        evaluate = pl_module._evaluate

        def recorded(*args, **kwargs):  # the module's own evaluation, its games' returns kept
            result = evaluate(*args, **kwargs)
            self.eval_returns.append(result.returns.tolist())
            return result

        pl_module._evaluate = recorded

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.record:  # a resumed run starts at the restored batch index
            self.record = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                           "actions": batch["actions"].tolist(), "observations_sum": int(batch["observations"].sum()),
                           "expert_rows_by_update": {}}
        expert_rows = batch["observations"][batch["is_expert"]]
        self.record["expert_rows_by_update"][str(trainer.global_step)] = int(expert_rows.sum())

    def on_fit_end(self, trainer, pl_module) -> None:
        weights = torch.cat([p.detach().flatten() for p in pl_module.q_net.parameters()])
        self.record["weights"] = [float(weights.sum()), float((weights * weights).sum())]
        self.record["eval_returns"] = self.eval_returns
        out = Path(os.environ["PROBE_DIR"]) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps(self.record))
