#!/usr/bin/env python
"""Export a small agent checkpoint from a training checkpoint. Logic: visual_iq.tools.export."""

import sys

from visual_iq.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
