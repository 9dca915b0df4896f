#!/usr/bin/env python
"""Record demonstrations (human keyboard play, scripted expert, trained agent). Logic: visual_iq.tools.record."""

import sys

from visual_iq.tools.record import main

if __name__ == "__main__":
    sys.exit(main())
