"""The demo frame cache: the same replay as decoding in memory, read back without decoding, rebuilt
when a demo file changes, and shared between processes through the page cache."""

import os
import shutil

import numpy as np
import pytest

from conftest import CATCH_DEMOS

import visual_iq.data.batches as batches
from visual_iq.data.batches import BatchSource
from visual_iq.data.demos import episode_paths

ARRAYS = ("frames", "episode_steps", "actions", "rewards", "terminated", "truncated")


def _source(demos, settings, cache_dir=None, num_demos=6):
    return BatchSource.from_demos(demos, settings, num_demos=num_demos, batch_size=8, seed=3, cache_dir=cache_dir)


def test_cached_replay_equals_the_decoded_one_and_samples_the_same(tmp_path, catch_settings):
    plain = _source(CATCH_DEMOS, catch_settings)
    built = _source(CATCH_DEMOS, catch_settings, tmp_path)  # writes the entry
    read = _source(CATCH_DEMOS, catch_settings, tmp_path)  # reads it back
    for source in (built, read):
        assert isinstance(source.expert.frames, np.memmap) and not source.expert.frames.flags.writeable
        for key in ARRAYS:
            assert np.array_equal(getattr(source.expert, key), getattr(plain.expert, key)), key
        assert source.expert.written == plain.expert.written
    first, again = plain.sample(), read.sample()
    for key in ("observations", "actions", "next_observations", "terminated"):
        assert np.array_equal(first[key].numpy(), again[key].numpy()), key
    entries = [path.name for path in tmp_path.iterdir()]
    assert len(entries) == 1 and ".partial" not in entries[0]  # one entry, no leftovers


def test_a_cached_start_decodes_only_the_first_episode(tmp_path, catch_settings, monkeypatch):
    _source(CATCH_DEMOS, catch_settings, tmp_path)
    decoded = []
    original = batches.iter_episodes

    def counting(*args, **kwargs):
        for episode in original(*args, **kwargs):
            decoded.append(episode)
            yield episode

    monkeypatch.setattr(batches, "iter_episodes", counting)
    _source(CATCH_DEMOS, catch_settings, tmp_path)
    assert len(decoded) == 1  # the settings check reads the first episode; the frames come from the cache


def test_a_changed_demo_file_makes_a_new_entry(tmp_path, catch_settings):
    demos = tmp_path / "demos"
    shutil.copytree(CATCH_DEMOS, demos)
    cache = tmp_path / "cache"
    before = _source(demos, catch_settings, cache, num_demos=3)
    first = episode_paths(demos)[0]
    os.utime(first, ns=(0, os.stat(first).st_mtime_ns + 10**9))  # as if re-recorded
    shutil.copy(episode_paths(CATCH_DEMOS)[5], first)  # another episode in its place
    after = _source(demos, catch_settings, cache, num_demos=3)
    assert len(list(cache.iterdir())) == 2
    assert not np.array_equal(before.expert.actions, after.expert.actions)
    plain = _source(demos, catch_settings, num_demos=3)
    assert np.array_equal(after.expert.frames, plain.expert.frames)


def test_a_cache_entry_of_the_wrong_size_is_refused_by_name(tmp_path, catch_settings):
    _source(CATCH_DEMOS, catch_settings, tmp_path)
    entry = next(tmp_path.iterdir())
    np.save(entry / "frames.npy", np.zeros((1, 10, 84, 84), np.uint8))
    with pytest.raises(ValueError, match=entry.name):
        _source(CATCH_DEMOS, catch_settings, tmp_path)


def test_a_run_that_finds_the_entry_written_meanwhile_reads_that_one(tmp_path, catch_settings):
    # two runs starting at once both write an entry; the second rename fails and must not be an error
    from visual_iq.data.buffer import FrameReplayBuffer
    from visual_iq.data.demos import demo_paths, iter_episodes, stored_frames
    from visual_iq.data.frame_cache import _write_entry, cache_key

    first = _source(CATCH_DEMOS, catch_settings, tmp_path)
    paths = demo_paths(CATCH_DEMOS, 6)
    total = sum(stored_frames(path) for path in paths)

    def build(frames):
        return FrameReplayBuffer.from_episodes(iter_episodes(CATCH_DEMOS, limit=6), total_frames=total, frames=frames)

    _write_entry(tmp_path / cache_key(paths), build, total, first.expert.frames.shape[2:])
    assert [path.name for path in tmp_path.iterdir()] == [cache_key(paths)]  # no partial entry left
    again = _source(CATCH_DEMOS, catch_settings, tmp_path)
    assert np.array_equal(again.expert.frames, first.expert.frames)


def test_a_device_replay_mirrors_the_cached_frames(tmp_path, catch_settings, recwarn):
    source = BatchSource.from_demos(CATCH_DEMOS, catch_settings, num_demos=4, batch_size=8, cache_dir=tmp_path,
                                    device="cpu")  # the GPU path's mirror, on the CPU
    assert np.array_equal(source.mirrors[0].frames.numpy(), source.expert.frames)
    assert source.sample()["observations"].shape[0] == 8
    assert not [w for w in recwarn if "not writable" in str(w.message)]
