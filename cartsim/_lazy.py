"""Lazy exports: a package names what it offers, and imports each module on first use.

Keeps ``import cartsim`` (and ``import cartsim.plot``, ``cartsim.fitting``, ...) light:
numba kernels, matplotlib, SciPy's optimisers and SALib load only when a name that needs
them is first used (PEP 562 module ``__getattr__``)::

    _LAZY = {"fit": ("cartsim.fitting.api", "fit")}
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=["FitOptions"])
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, tuple[str, str | None]],
                 eager: Iterable[str] = ()):
    """Module ``__getattr__`` and ``__dir__`` for ``package``.

    Parameters
    ----------
    package : the package's ``__name__``.
    names : public name -> ``(module, attribute)``; attribute None exports the module itself.
    eager : names the package already imports; listed by ``dir()``.

    A name is imported once, then cached in the package's namespace.
    """
    public = sorted({*names, *eager})

    def __getattr__(name: str):
        try:
            module, attr = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return public

    return __getattr__, __dir__
