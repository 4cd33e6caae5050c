"""Errors whose message is meant for the person using the app."""

from __future__ import annotations

__all__ = ["SegmentationError"]


class SegmentationError(ValueError):
    """A step cannot produce a meaningful result on this image (e.g. no cutoff)."""
