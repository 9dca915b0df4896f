"""``visual-iq upgrade CKPT [CKPT ...]``: convert checkpoints made before the settings were grouped.

Checkpoints and exported agents of earlier visual-iq versions hold their settings flat (``alpha``,
``batch_size``, ...); today's group them (``objective.alpha``, ``data.batch_size``; see
`visual_iq.train.config`). This rewrites each file in place, atomically, with only its settings regrouped.
"""

from __future__ import annotations

import argparse
import pickle
import sys

from visual_iq.train.config import upgrade_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visual-iq upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files, rewritten in place")
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        try:
            changed = upgrade_checkpoint(path)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
            print(f"visual-iq upgrade: error: {path}: not a readable checkpoint ({error})", file=sys.stderr)
            return 1
        print(f"{path}: {'settings grouped' if changed else 'already grouped, left as it was'}")
    return 0
