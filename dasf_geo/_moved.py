"""Old import paths of names that moved to a higher layer.

When a name moves up the layers (the module handler, ``send_request`` and
the dynamic client moved from ``transport`` to ``service``), its old module
keeps a ``MOVED`` table (name -> dotted path of the new module) and sets
``__getattr__ = moved_names(__name__, MOVED)``: code written against the old
path still imports the name, which is looked up in its new module on first
access (PEP 562), as ``dasf_geo/__init__.py``'s lazy table does.

The table is a string, not an import: the old module does not depend on the
higher layer, and no module of the package may use a moved name through its
old path (``tests/test_layers.py`` checks both).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_names"]


def moved_names(module: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that finds the names of ``table`` in their new home.

    Args:
        module: the ``__name__`` of the old module (for the error message).
        table: moved name -> dotted path of the module that now defines it.

    Returns:
        the function to assign to the old module's ``__getattr__``; it
        raises :class:`AttributeError` for a name that is not in ``table``.
    """

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(target), name)

    return __getattr__
