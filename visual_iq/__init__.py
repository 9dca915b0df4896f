"""visual-iq: IQ-Learn imitation learning from Atari pixels."""

__version__ = "0.1.0"
