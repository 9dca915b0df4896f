#!/usr/bin/env python
"""Print a run's evaluation learning curve from its TensorBoard events. Logic: visual_iq.tools.curve."""

import sys

from visual_iq.tools.curve import main

if __name__ == "__main__":
    sys.exit(main())
