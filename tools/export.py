#!/usr/bin/env python
"""Export a small agent checkpoint from a training checkpoint, or the average of several. Logic: visual_iq.tools.export."""

import sys

from visual_iq.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
