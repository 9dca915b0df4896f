"""Shared test fixtures: the tiny Catch task, its shipped expert demos, and short training runs on it."""

from pathlib import Path

import lightning as L
import pytest

from visual_iq.env.envs import EnvSettings
from visual_iq.train.config import nest_flat_settings
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS, IQLearn

CATCH_DEMOS = "tests/data/catch"
"""20 optimal Catch episodes (every ball caught: return +5)."""


@pytest.fixture(scope="session")
def catch_settings() -> EnvSettings:
    return EnvSettings("visual_iq/Catch-v0")


def iq_learn(**flat_settings) -> IQLearn:
    """`IQLearn` from flat setting names (``batch_size=8, online=True``), put in their groups as the
    configs group them (``data.batch_size``, ``online.enabled``): short to write in a test."""
    return IQLearn(**nest_flat_settings(flat_settings))  # IQLearn takes a group as a dict too, as checkpoints hold it


def train_catch(root: Path, max_steps: int, callbacks=(), **model_args) -> IQLearn:
    """IQLearn (or a baseline, via ``method``) trained ``max_steps`` updates on Catch, evaluated once at the end."""
    L.seed_everything(0)
    settings = {"network": "small", "lr": 3e-4, "batch_size": 32, "eval_episodes": 10, "eval_video": False,
                "seed": 0, "demos": CATCH_DEMOS, **model_args}
    model = iq_learn(game="visual_iq/Catch-v0", **settings)
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=max_steps, val_check_interval=max_steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=root, callbacks=list(callbacks))
    trainer.fit(model)
    return model.eval()


@pytest.fixture
def train(tmp_path):
    """`train_catch` in this test's temporary directory."""
    return lambda max_steps, **kwargs: train_catch(tmp_path, max_steps, **kwargs)
