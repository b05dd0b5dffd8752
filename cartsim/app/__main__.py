"""``python -m cartsim.app``: serve the dosing what-if app (see :mod:`cartsim.app.serve`)."""

from cartsim.app.serve import main

main()
