"""visual-iq: IQ-Learn imitation learning from Atari pixels."""

from visual_iq.env import catch

__version__ = "0.1.0"

catch.register()
