"""``visual-iq demos info DIR [--json]``, ``video DIR -o out.mp4``,
``render DIR OUT --crop-top 34 --crop-bottom 16`` (the same games under other frame settings) and
``recompress DIR`` (older demo files rewritten in today's smaller format), ``to-minari DIR ID`` and
``from-minari ID DIR`` (Minari datasets out and in, `visual_iq.data.minari_io`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from visual_iq.data.demos import episode_paths, load_episode, load_episodes, recompress_episode, summarize
from visual_iq.env.envs import EnvSettings
from visual_iq.errors import DemoError, VisualIQError


def write_video(frames: np.ndarray, out: str | Path, *, fps: int = 30, scale: int = 4) -> Path:
    """Write (T, H, W) uint8 gray frames as ``.mp4`` (OpenCV) or ``.gif`` (imageio), upscaled."""
    out = Path(out)
    big = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gif":
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise DemoError("writing .gif needs imageio (pip install 'visual-iq[video]'); .mp4 works without it") from None
        imageio.mimsave(out, list(big), duration=1.0 / fps, loop=0)
    elif out.suffix == ".mp4":
        height, width = big.shape[1:]
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height), False)
        if not writer.isOpened():
            raise DemoError(f"{out}: OpenCV cannot open an mp4 writer here")
        for frame in big:
            writer.write(frame)
        writer.release()
    else:
        raise DemoError(f"{out}: video must end in .mp4 or .gif")
    return out


def _info(args: argparse.Namespace) -> int:
    summary = summarize(load_episodes(args.directory))
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.directory}: {summary['game']}, {summary['episodes']} episodes, {summary['steps']} steps")
    print(
        f"return mean {summary['return_mean']:.2f} std {summary['return_std']:.2f} "
        f"min {summary['return_min']:.0f} max {summary['return_max']:.0f}"
    )
    shares = " ".join(f"{action}:{share:.3f}" for action, share in enumerate(summary["action_shares"]))
    repeat_share = "n/a" if summary["repeat_share"] is None else f"{summary['repeat_share']:.3f}"
    print(f"action shares {shares}; same action as the step before {repeat_share}")
    print(f"sources: {', '.join(summary['sources'])}")
    print("settings: " + ", ".join(f"{key}={value}" for key, value in summary["settings"].items()))
    return 0


def _video(args: argparse.Namespace) -> int:
    paths = episode_paths(args.directory)
    if not 0 <= args.episode < len(paths):
        raise DemoError(f"{args.directory}: episode index {args.episode} out of range (0..{len(paths) - 1})")
    episode = load_episode(paths[args.episode])
    frames = episode.frames if args.max_steps is None else episode.frames[: args.max_steps + 1]
    out = write_video(frames, args.output, fps=args.fps)
    print(f"wrote {out} ({len(frames)} frames of {paths[args.episode].name}, return {episode.episode_return:+.0f})")
    return 0


def _render(args: argparse.Namespace) -> int:
    from visual_iq.record.replay import rerender_demos  # imports the envs; info and video do without

    changes = {key: value for key, value in (("crop_top", args.crop_top), ("crop_bottom", args.crop_bottom),
                                             ("screen_size", args.screen_size)) if value is not None}
    if not changes:
        raise DemoError("render: give at least one of --crop-top, --crop-bottom, --screen-size")
    written = rerender_demos(args.directory, args.output, changes)
    print(f"{args.output}: {len(written)} episodes of {args.directory} with {changes}")
    return 0


def _recompress(args: argparse.Namespace) -> int:
    paths = episode_paths(args.directory)
    before = sum(path.stat().st_size for path in paths)
    rewritten = sum(recompress_episode(path) for path in paths)
    after = sum(path.stat().st_size for path in paths)
    print(f"{args.directory}: {rewritten} of {len(paths)} episodes rewritten, {before / 1e6:.1f} -> {after / 1e6:.1f} MB")
    return 0


def _to_minari(args: argparse.Namespace) -> int:
    from visual_iq.data.minari_io import to_minari

    count = to_minari(args.directory, args.dataset_id, args.path)
    print(f"{args.directory}: {count} episodes -> Minari dataset {args.dataset_id}")
    return 0


def _from_minari(args: argparse.Namespace) -> int:
    from visual_iq.data.minari_io import from_minari

    settings = None
    if args.game is not None:
        settings = EnvSettings(args.game, **({} if args.sticky is None else {"sticky_actions": args.sticky}))
    count = from_minari(args.dataset_id, args.directory, args.path, settings)
    print(f"Minari dataset {args.dataset_id}: {count} episodes -> {args.directory}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visual-iq demos", description="Inspect recorded demonstrations.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="episodes, steps, returns, game and settings of a demo directory")
    info.add_argument("directory")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=_info)
    video = commands.add_parser("video", help="render one episode to .mp4 or .gif")
    video.add_argument("directory")
    video.add_argument("-o", "--output", required=True, help="out.mp4 or out.gif")
    video.add_argument("--episode", type=int, default=0, help="index of the episode in file order")
    video.add_argument("--fps", type=int, default=30)
    video.add_argument("--max-steps", type=int, default=None, help="render only the first N steps")
    video.set_defaults(run=_video)
    render = commands.add_parser("render", help="replay each episode from its seed and store its frames with other "
                                                "frame settings (only games that replay exactly, e.g. --deterministic-plans demos)")
    render.add_argument("directory")
    render.add_argument("output", help="directory for the re-rendered episodes (kept ones are not redone)")
    render.add_argument("--crop-top", type=int, default=None, help="screen rows dropped above (Pong: 34)")
    render.add_argument("--crop-bottom", type=int, default=None, help="screen rows dropped below (Pong: 16)")
    render.add_argument("--screen-size", type=int, default=None, help="frame side length (84 as recorded)")
    render.set_defaults(run=_render)
    recompress = commands.add_parser("recompress", help="rewrite older (format 1) episode files in place in today's "
                                                        "format (frames as one LZMA stream: ~4x smaller), checked")
    recompress.add_argument("directory")
    recompress.set_defaults(run=_recompress)
    path_help = "Minari's datasets directory (default: MINARI_DATASETS_PATH, else ~/.minari/datasets)"
    to_minari = commands.add_parser("to-minari", help="write a demo directory as a Minari dataset (lossless frames; "
                                                      "needs the minari extra)")
    to_minari.add_argument("directory")
    to_minari.add_argument("dataset_id", help="e.g. visual-iq/pong-expert-v0")
    to_minari.add_argument("--path", default=None, help=path_help)
    to_minari.set_defaults(run=_to_minari)
    from_minari = commands.add_parser("from-minari", help="write a Minari dataset (discrete actions, image observations) "
                                                          "into a demo directory")
    from_minari.add_argument("dataset_id")
    from_minari.add_argument("directory", help="episodes are added after existing ones")
    from_minari.add_argument("--path", default=None, help=path_help)
    from_minari.add_argument("--game", default=None, help="the game, where the dataset does not say (e.g. Pong)")
    from_minari.add_argument("--sticky", type=float, default=None, help="with --game: its sticky-action probability")
    from_minari.set_defaults(run=_from_minari)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
