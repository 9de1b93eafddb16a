"""CoEA: serendipitous category recommendation with dual collaborative LLMs."""

__version__ = "0.1.0"
