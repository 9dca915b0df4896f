"""``python tools/export.py CKPT OUT``: a small agent checkpoint (network, hparams, env settings)."""

from __future__ import annotations

import argparse
import sys

from visual_iq.agent import export_agent
from visual_iq.errors import VisualIQError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/export.py", description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="a training checkpoint, e.g. runs/pong/version_0/checkpoints/last.ckpt")
    parser.add_argument("out", help="where to write the exported agent (.ckpt)")
    args = parser.parse_args(argv)
    try:
        out = export_agent(args.ckpt, args.out)
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): use it with visual-iq test/validate --ckpt_path, "
          "tools/record.py --source agent, tools/reward.py")
    return 0
