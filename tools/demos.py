#!/usr/bin/env python
"""Inspect demonstrations: ``info DIR [--json]``, ``video DIR -o out.mp4``. Logic: visual_iq.tools.demos."""

import sys

from visual_iq.tools.demos import main

if __name__ == "__main__":
    sys.exit(main())
