"""Which checkpoints a training run keeps, as Lightning `ModelCheckpoint` callbacks.

Every run keeps its best checkpoint by evaluation return (``best-<step>-<return>.ckpt``) and the
newest one (``last.ckpt``, to resume). Snapshots every N updates are kept on request: the soft-Q
policy oscillates from one evaluation to the next, and the average of snapshots' networks taken on
its plateau (``visual-iq export CKPT... OUT``) played better than any one of them (research/results.md,
"Averaging weights").
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint


def run_checkpoints(snapshot_every: int | None = None) -> list[ModelCheckpoint]:
    """The best and the last checkpoint and, with ``snapshot_every``, ``snap-<step>.ckpt`` every
    that many updates, all of them kept. Snapshots hold the networks (as trained, also under a
    weight-averaging callback), hparams and env settings, not the optimizer or the online replay
    (hundreds of MB): they are for averaging, testing and warm starts, not for resuming."""
    best = ModelCheckpoint(monitor="eval/return_mean", mode="max", save_top_k=1,
                           filename="best-{step}-{eval/return_mean:.1f}", auto_insert_metric_name=False)
    last = ModelCheckpoint(filename="last", save_top_k=1, enable_version_counter=False)
    if not snapshot_every:
        return [best, last]
    snapshots = ModelCheckpoint(filename="snap-{step}", every_n_train_steps=snapshot_every, save_top_k=-1,
                                auto_insert_metric_name=False, save_weights_only=True)
    return [best, last, snapshots]
