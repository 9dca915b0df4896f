"""A callback for the DDP test: each process writes what it sampled first to $PROBE_DIR/rank<N>.json."""

import json
import os
from pathlib import Path

import lightning as L


class RecordFirstBatch(L.Callback):
    def __init__(self) -> None:
        self.recorded = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.recorded:  # a resumed run starts at the restored batch index
            self.recorded = True
            record = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                      "actions": batch["actions"].tolist(), "observations_sum": int(batch["observations"].sum())}
            out = Path(os.environ["PROBE_DIR"]) / f"rank{trainer.global_rank}.json"
            out.write_text(json.dumps(record))
