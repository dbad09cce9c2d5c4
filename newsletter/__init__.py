"""Compose, preview and send a monthly email bulletin from a git repository."""

__version__ = "0.1.0"
