"""The dosing what-if app: one patient, two to four regimens side by side, for a clinician.

``DosingApp().panel()`` shows it in a notebook; ``cartsim-app`` (or ``make app``) serves the
same app as a page on localhost. Panel is imported here only, never by ``import cartsim``.
The logic (controls to scenarios, value boxes, sensitivity, report) lives in
:mod:`cartsim.app.controls` and :mod:`cartsim.app.results`, usable without a browser.
"""

from __future__ import annotations

__all__ = ["DosingApp", "serve"]


def __getattr__(name):
    if name == "DosingApp":
        from cartsim.app.ui import DosingApp

        return DosingApp
    if name == "serve":
        from cartsim.app.serve import serve

        return serve
    raise AttributeError(name)
