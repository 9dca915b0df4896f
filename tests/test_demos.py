import json

import lightning as L
import numpy as np
import pytest
import torch

from conftest import iq_learn
from visual_iq.data.demos import (
    DemoError,
    Episode,
    EpisodeBuilder,
    load_episode,
    load_episodes,
    next_episode_path,
    recompress_episode,
    save_episode,
    summarize,
)
from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.errors import EnvSettingsError
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS
from visual_iq.record.recorder import record_episodes
from visual_iq.record.replay import rerender_episode
from visual_iq.tools.demos import main as demos_main

SETTINGS = EnvSettings("Pong", sticky_actions=0.0, noop_max=0, max_episode_frames=400)


def _random_episodes(tmp_path, count=2, seed=0):
    env = make_env(SETTINGS)
    rng = np.random.default_rng(seed)
    return record_episodes(
        env, lambda _obs: int(rng.integers(6)), tmp_path, episodes=count, source="agent",
        seed=seed, progress=lambda _message: None,
    )


def _episode(steps=5, **changes):
    arrays = dict(
        frames=np.zeros((steps + 1, 84, 84), np.uint8),
        actions=np.zeros(steps, np.int16),
        rewards=np.zeros(steps, np.float32),
        terminated=np.zeros(steps, bool),
        truncated=np.zeros(steps, bool),
        settings=SETTINGS,
    )
    arrays.update(changes)
    return Episode(**arrays)


def _write_npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez_compressed(file, **arrays)


def test_round_trip_rebuilds_exact_observations(tmp_path):
    env = make_env(SETTINGS)
    observation, _ = env.reset(seed=11)
    builder = EpisodeBuilder(SETTINGS, observation, 11)
    observations, rng = [observation], np.random.default_rng(1)
    done = False
    while not done:
        action = int(rng.integers(6))
        observation, reward, terminated, truncated, _ = env.step(action)
        builder.add(action, reward, observation, terminated, truncated)
        observations.append(observation)
        done = terminated or truncated
    path = save_episode(builder.finish("expert"), tmp_path / "e.npz")
    episode = load_episode(path, SETTINGS)
    assert np.array_equal(episode.observations(), np.stack(observations))
    assert episode.truncated[-1] and episode.length == 100 and episode.seed == 11
    metadata = json.loads(np.load(path)["metadata"].tobytes())
    for key in ("settings", "seed", "source", "return", "length", "created", "package_version"):
        assert key in metadata


def test_pong_frames_are_small_on_disk(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    frames = len(load_episode(path).frames)
    assert path.stat().st_size / frames <= 100


def test_frames_are_one_lzma_stream_and_a_damaged_one_is_named(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    with np.load(path) as data:
        assert "frames" not in data.files and data["frames_shape"].tolist() == [101, 84, 84]
        stream = data["frames_xz"].copy()
    stream[len(stream) // 2] ^= 0xFF
    _rewrite(path, frames_xz=stream)
    with pytest.raises(DemoError, match=f"{path}: corrupt or truncated demo file \\(damaged frame stream"):
        load_episode(path)


def _as_format_1(path):
    """Rewrite a demo file as format 1 stored it: the frames as a plain (deflated) array."""
    episode = load_episode(path)
    with np.load(path) as data:
        metadata = json.loads(data["metadata"].tobytes())
    metadata["format_version"] = 1
    _write_npz(path, frames=episode.frames, actions=episode.actions, rewards=episode.rewards,
               terminated=episode.terminated, truncated=episode.truncated,
               metadata=np.frombuffer(json.dumps(metadata).encode(), np.uint8))
    return episode, metadata


def test_format_1_files_load_and_recompress_to_the_same_episode(tmp_path, capsys):
    paths = _random_episodes(tmp_path, count=2)
    originals = [_as_format_1(path) for path in paths]
    sizes = [path.stat().st_size for path in paths]
    assert np.array_equal(load_episode(paths[0]).frames, originals[0][0].frames)  # format 1 still loads
    assert demos_main(["recompress", str(tmp_path)]) == 0
    assert "2 of 2 episodes rewritten" in capsys.readouterr().out
    for path, size, (episode, metadata) in zip(paths, sizes, originals):
        again = load_episode(path)
        assert np.array_equal(again.frames, episode.frames) and np.array_equal(again.actions, episode.actions)
        with np.load(path) as data:
            stored = json.loads(data["metadata"].tobytes())
        assert stored == {**metadata, "format_version": 2} and path.stat().st_size < size
    assert not recompress_episode(paths[0])  # already in today's format: left alone


def test_next_episode_path_appends(tmp_path):
    _random_episodes(tmp_path, count=2)
    assert next_episode_path(tmp_path).name == "episode_00002.npz"
    assert len(load_episodes(tmp_path)) == 2


def test_save_is_atomic_and_keeps_existing_files(tmp_path, monkeypatch):
    [first] = _random_episodes(tmp_path, count=1)
    before = first.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(KeyboardInterrupt):
        save_episode(_episode(), next_episode_path(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_00000.npz"]
    assert first.read_bytes() == before


def test_truncated_file(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DemoError, match=f"{path}: corrupt or truncated demo file"):
        load_episode(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "e.npz"
    path.write_text("hello")
    with pytest.raises(DemoError, match="corrupt or truncated"):
        load_episode(path)


def test_missing_keys(tmp_path):
    path = tmp_path / "e.npz"
    _write_npz(path, frames=np.zeros((3, 84, 84), np.uint8))
    with pytest.raises(DemoError, match=r"e.npz: missing keys \['actions', 'metadata'"):
        load_episode(path)


def _rewrite(path, **replace):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(replace)
    _write_npz(path, **arrays)


def test_wrong_dtype(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    _rewrite(path, frames=load_episode(path).frames.astype(np.float32))  # a format-1 file's plain frames
    with pytest.raises(DemoError, match=r"episode_00000.npz: .*'frames' must be a 3-d uint8 array, got float32"):
        load_episode(path)


def test_wrong_shape(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    _rewrite(path, frames=load_episode(path).frames[:, :42])
    with pytest.raises(DemoError, match=r"frames are \(42, 84\), settings say \(84, 84\)"):
        load_episode(path)


def test_lengths_disagree(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    with np.load(path) as data:
        rewards = data["rewards"][:-3]
    _rewrite(path, rewards=rewards)
    with pytest.raises(DemoError, match=r"episode_00000.npz: .*lengths disagree: 'rewards' has 97, 'actions' has 100"):
        load_episode(path)


def test_bad_metadata(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    _rewrite(path, metadata=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(DemoError, match="episode_00000.npz: bad metadata"):
        load_episode(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    [path] = _random_episodes(tmp_path, count=1)
    _rewrite(path, actions=np.array([object()] * 100, dtype=object))
    with pytest.raises(DemoError, match="corrupt or truncated demo file"):
        load_episode(path)


def test_settings_mismatch(tmp_path):
    _random_episodes(tmp_path, count=1)
    wanted = EnvSettings("Pong", sticky_actions=0.25, noop_max=0, max_episode_frames=400)
    with pytest.raises(DemoError, match="do not match.*sticky_actions: 0.0 != 0.25"):
        load_episodes(tmp_path, wanted)
    with pytest.raises(DemoError, match="game: 'Pong' != 'Breakout'"):
        load_episodes(tmp_path, EnvSettings("Breakout"))


def test_empty_and_missing_directory(tmp_path):
    with pytest.raises(DemoError, match=f"{tmp_path}: no demo files"):
        load_episodes(tmp_path)
    with pytest.raises(DemoError, match="does not exist"):
        load_episodes(tmp_path / "nope")


def test_several_directories_are_read_in_order(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for directory, lengths in ((first, (3, 4)), (second, (5, 6, 7))):
        directory.mkdir()
        for steps in lengths:
            save_episode(_episode(steps), next_episode_path(directory))
    assert [e.length for e in load_episodes([second, first])] == [5, 6, 7, 3, 4]
    assert [e.length for e in load_episodes([first, second], limit=3)] == [3, 4, 5]
    with pytest.raises(DemoError, match=f"{first} \\+ {second}: asked for 6 demo episodes, there are 5"):
        load_episodes([first, second], limit=6)
    with pytest.raises(DemoError, match=f"{tmp_path / 'c'}: demo directory does not exist"):
        load_episodes([first, tmp_path / "c"])
    save_episode(_episode(2, settings=EnvSettings("Breakout", sticky_actions=0.0, noop_max=0)),
                 next_episode_path(second))
    with pytest.raises(DemoError, match="episode_00003.npz: settings differ from the other episodes in .*a \\+ .*b"):
        load_episodes([first, second])


def test_episode_checks_itself():
    with pytest.raises(DemoError, match="'terminated' is True before the last step"):
        _episode(terminated=np.array([True, False, False, False, False]))
    with pytest.raises(DemoError, match="expected actions \\+ 1 = 6"):
        _episode(frames=np.zeros((5, 84, 84), np.uint8))
    with pytest.raises(DemoError, match="source must be one of"):
        Episode(**{**_episode().__dict__, "source": "robot"})


def test_info_json(tmp_path, capsys):
    _random_episodes(tmp_path, count=2)
    assert demos_main(["info", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["steps"] == 200 and summary["game"] == "Pong"
    assert summary["return_mean"] <= 0 and "return_std" in summary


def test_summarize_counts_action_shares_and_repeats_within_episodes():
    first = _episode(steps=4, actions=np.array([0, 0, 2, 2], np.int16))  # 2 repeats of 3 pairs
    second = _episode(steps=2, actions=np.array([2, 3], np.int16))  # 0 of 1; no pair across episodes
    summary = summarize([first, second])
    assert summary["action_shares"] == pytest.approx([2 / 6, 0.0, 3 / 6, 1 / 6])
    assert summary["repeat_share"] == pytest.approx(2 / 4)


def test_info_json_is_standard_when_no_episode_has_two_steps(tmp_path, capsys):
    save_episode(_episode(steps=1, actions=np.array([3], np.int16)), tmp_path / "episode_00000.npz")
    assert demos_main(["info", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"non-standard {name}"))
    assert summary["repeat_share"] is None and summary["action_shares"] == [0.0, 0.0, 0.0, 1.0]
    assert demos_main(["info", str(tmp_path)]) == 0
    assert "same action as the step before n/a" in capsys.readouterr().out


def test_info_prints_action_figures(tmp_path, capsys):
    _random_episodes(tmp_path, count=1)
    assert demos_main(["info", str(tmp_path)]) == 0
    assert "same action as the step before" in capsys.readouterr().out


def test_info_reports_bad_directory(tmp_path, capsys):
    assert demos_main(["info", str(tmp_path)]) == 2
    assert f"error: {tmp_path}: no demo files" in capsys.readouterr().err


def test_video(tmp_path):
    _random_episodes(tmp_path / "demos", count=1)
    for name in ("out.mp4", "out.gif"):
        assert demos_main(["video", str(tmp_path / "demos"), "-o", str(tmp_path / name), "--max-steps", "20"]) == 0
        assert (tmp_path / name).stat().st_size > 1000


CROP = {"crop_top": 34, "crop_bottom": 16}


def test_render_replays_games_with_a_cropped_playfield(tmp_path):
    """Sticky actions and no-op starts on: the replay must follow the recorded seed exactly."""
    settings = EnvSettings("Pong", max_episode_frames=400)
    rng = np.random.default_rng(0)
    record_episodes(make_env(settings), lambda _obs: int(rng.integers(6)), tmp_path / "full", episodes=2,
                    source="agent", seed=5, progress=lambda _message: None)
    assert demos_main(["render", str(tmp_path / "full"), str(tmp_path / "crop"), "--crop-top", "34",
                       "--crop-bottom", "16"]) == 0
    for original, cropped in zip(load_episodes(tmp_path / "full"), load_episodes(tmp_path / "crop")):
        assert cropped.settings == EnvSettings("Pong", max_episode_frames=400, **CROP)
        assert np.array_equal(cropped.actions, original.actions) and np.array_equal(cropped.rewards, original.rewards)
        assert cropped.extra["rerendered_from"] == original.settings.to_dict()
        # the frames are what a cropped env shows when the same actions are played from the same seed
        env = make_env(cropped.settings)
        observation, _ = env.reset(seed=original.seed)
        assert np.array_equal(observation[-1], cropped.frames[0])
        for step, action in enumerate(original.actions):
            observation, *_ = env.step(int(action))
            assert np.array_equal(observation[-1], cropped.frames[step + 1]), step
        assert not np.array_equal(cropped.frames, original.frames)
        env.close()


def test_render_replays_a_game_with_fire_pressed_for_the_agent(tmp_path):
    """The stored actions hold the FIREs pressed at each new life, so the game replays as recorded."""
    settings = EnvSettings("Breakout", max_episode_frames=2_000, fire_on_new_life=True)
    record_episodes(make_env(settings), lambda _obs: 0, tmp_path / "full", episodes=1, source="agent", seed=3,
                    progress=lambda _message: None)  # NOOP: every life starts with the wrapper's FIREs
    assert demos_main(["render", str(tmp_path / "full"), str(tmp_path / "crop"), "--crop-top", "20"]) == 0
    [original], [cropped] = load_episodes(tmp_path / "full"), load_episodes(tmp_path / "crop")
    assert (original.actions == 1).sum() >= 2 * 5 and np.array_equal(cropped.actions, original.actions)


def test_render_refuses_a_game_that_does_not_replay(tmp_path, capsys):
    [path] = _random_episodes(tmp_path / "full", count=1)
    actions = load_episode(path).actions.copy()
    actions[10:] = (actions[10:] + 1) % 6  # another game from step 10 on, as a planning expert's demos give
    _rewrite(path, actions=actions)
    assert demos_main(["render", str(tmp_path / "full"), str(tmp_path / "crop"), "--crop-top", "34"]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "does not replay exactly" in error
    assert not list((tmp_path / "crop").glob("*.npz"))  # nothing half-made is left
    with pytest.raises(DemoError, match="only frame settings can be re-rendered.*sticky_actions"):
        rerender_episode(load_episode(path), EnvSettings("Pong", sticky_actions=0.25, noop_max=0, max_episode_frames=400))


def test_cropped_demos_are_not_mixed_with_full_screens(tmp_path):
    _random_episodes(tmp_path, count=1)
    with pytest.raises(DemoError, match="crop_top: 0 != 34"):
        load_episodes(tmp_path, EnvSettings("Pong", sticky_actions=0.0, noop_max=0, max_episode_frames=400, **CROP))


def test_frames_of_another_size_train_a_network_of_that_size(tmp_path):
    """``screen_size`` reaches demos, env and network alike; demos of another size are refused by name."""
    rng = np.random.default_rng(0)
    record_episodes(make_env(EnvSettings("Pong", max_episode_frames=400)), lambda _obs: int(rng.integers(6)),
                    tmp_path / "full", episodes=1, source="agent", seed=5, progress=lambda _message: None)
    assert demos_main(["render", str(tmp_path / "full"), str(tmp_path / "big"), "--crop-top", "34",
                       "--crop-bottom", "16", "--screen-size", "100"]) == 0
    [episode] = load_episodes(tmp_path / "big")
    assert episode.frames.shape[1:] == (100, 100)
    model = iq_learn(game="Pong", demos=str(tmp_path / "big"), screen_size=100, batch_size=8, eval_video=False, **CROP)
    assert model.q_net(torch.zeros(2, 4, 100, 100, dtype=torch.uint8)).shape == (2, 6)
    before = [p.detach().clone() for p in model.q_net.parameters()]
    L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path).fit(model)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.q_net.parameters()))
    with pytest.raises(EnvSettingsError, match=r"demos in .*big was made with different env settings: screen_size: 100 != 84"):
        L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=1, limit_val_batches=0, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  default_root_dir=tmp_path).fit(iq_learn(game="Pong", demos=str(tmp_path / "big"), **CROP))
