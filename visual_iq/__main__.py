"""``visual-iq``: the one front end.

``visual-iq fit | validate | test ...`` trains and evaluates (LightningCLI over the module, `visual_iq.cli`);
``visual-iq record | demos | reward | export | curve | misses | upgrade ...`` runs a tool (`visual_iq.tools`).
"""

from __future__ import annotations

import importlib
import sys

TOOLS = {
    "record": "record demonstrations: a person at the keyboard, the scripted expert, or a trained agent",
    "demos": "inspect demos: info, video, render them under other frame settings",
    "reward": "the recovered reward along held-out episodes, against the game's",
    "export": "export a checkpoint (or the average of several) as one small agent",
    "curve": "a run's evaluation returns read back from its TensorBoard events",
    "misses": "where an agent loses points: the ball's approaches, missed or returned",
    "upgrade": "convert checkpoints of earlier versions (flat settings) to today's grouped settings",
}


def main(args: list[str] | None = None) -> int:
    given = sys.argv[1:] if args is None else list(args)
    if given and given[0] in TOOLS:
        return importlib.import_module(f"visual_iq.tools.{given[0]}").main(given[1:])
    if not given or given[0] in ("-h", "--help"):
        width = max(map(len, TOOLS))
        print("tools (visual-iq TOOL --help for each):\n"
              + "\n".join(f"  {name:<{width}}  {what}" for name, what in TOOLS.items()) + "\n")
    from visual_iq.cli import main as train_and_evaluate

    return train_and_evaluate(args)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    sys.exit(main())
