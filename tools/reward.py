#!/usr/bin/env python
"""Correlate a trained agent's implicit reward with the true reward. Logic: visual_iq.tools.reward."""

import sys

from visual_iq.tools.reward import main

if __name__ == "__main__":
    sys.exit(main())
