import sys

from visual_iq.cli import main

sys.exit(main())
