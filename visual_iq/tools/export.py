"""``visual-iq export CKPT [CKPT ...] OUT``: a small agent checkpoint (network, hparams, env
settings); given several checkpoints of one run, of the average of their networks."""

from __future__ import annotations

import argparse
import sys

from visual_iq.algo.agent import export_agent
from visual_iq.errors import VisualIQError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visual-iq export", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("ckpts", nargs="+", metavar="ckpt",
                        help="a training checkpoint, e.g. runs/pong/version_0/checkpoints/last.ckpt; several "
                             "(snapshots of one run, e.g. snap-*.ckpt of --model.evaluation.snapshot_every): their average")
    parser.add_argument("out", help="where to write the exported agent (.ckpt)")
    parser.add_argument("--as-trained", action="store_true",
                        help="the weights as trained, not the moving average that a run with an EMA callback "
                             "(visual_iq.train.averaging.EMA, Lightning's EMAWeightAveraging) saved in their place")
    args = parser.parse_args(argv)
    try:
        out = export_agent(args.ckpts, args.out, as_trained=args.as_trained)
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    averaged = f", the average of {len(args.ckpts)} checkpoints" if len(args.ckpts) > 1 else ""
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB{averaged}): use it with visual-iq test/validate "
          "--ckpt_path, visual-iq record --source agent, visual-iq reward")
    return 0
