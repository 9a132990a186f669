"""foresight: visual foresight with action-conditioned video prediction models."""

__version__ = "0.1.0"
