"""One entry per choice a setting offers: its name, its words for people, and what runs.

Each vocabulary (threshold methods, filters, background methods, seed methods,
...) is one ``dict[str, Method]`` next to the functions it names, e.g.
:data:`segmentation.threshold.THRESHOLD_METHODS`.  The settings
(:class:`~segmentation.params.Params`) validate against it, the sidebar and the
Compare page take their labels and tooltips from it, and the exported script
takes its code from it, so adding a method is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Method", "labels"]


@dataclass(frozen=True)
class Method:
    """One choice of a setting.

    Attributes
    ----------
    label : str
        Its name in the app, e.g. ``"Otsu"``.
    help : str
        One or two sentences for a biologist: what it does, when to use it.
    func : callable, optional
        What runs (its signature is the registry's own, see each registry).
    code : str, optional
        The same call in the exported script (plain scikit-image/scipy), as
        an expression of ``img`` (the image) and ``s`` (the settings dict).
    helpers : tuple of functions
        Functions of this package that `code` calls; their source is copied
        into the exported script, which never imports this package.
    """

    label: str
    help: str
    func: Callable[..., Any] | None = None
    code: str | None = None
    helpers: tuple[Callable[..., Any], ...] = ()


def labels(registry: Mapping[str, Method]) -> dict[str, str]:
    """Name -> label of every entry, in the registry's order.

    >>> labels({"otsu": Method("Otsu", "...")})
    {'otsu': 'Otsu'}
    """
    return {name: m.label for name, m in registry.items()}
