"""Errors every part of dogfilter shares (a leaf module: it imports nothing of the project)."""

from __future__ import annotations


class DogfilterError(Exception):
    """An error the user can fix (missing file, bad model, unknown camera...): shown as one line, exit code 2."""
