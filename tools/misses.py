#!/usr/bin/env python
"""Where an agent loses points: missed approaches of the ball. Logic: visual_iq.tools.misses."""

import sys

from visual_iq.tools.misses import main

if __name__ == "__main__":
    sys.exit(main())
