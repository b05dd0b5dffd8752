"""Serve the dosing what-if app as a page on this computer: ``cartsim-app`` / ``make app``."""

from __future__ import annotations

import argparse
import socket


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def serve(port: int = 5006, *, address: str = "127.0.0.1", show: bool = False,
          threaded: bool = False, n_cohort: int = 50, t_end: float = 365.0,
          run: bool = False, **kwargs):
    """Serve a fresh :class:`~cartsim.app.ui.DosingApp` per browser tab at
    ``http://address:port/``; prints the URL. ``threaded=True`` returns the running server
    (a thread; ``.stop()`` ends it), else this call blocks until interrupted. ``run=True``
    opens each page with its starting comparison already run."""
    import panel as pn

    from cartsim.app.ui import DosingApp

    def page():
        app = DosingApp(n_cohort=n_cohort, t_end=t_end)
        if run:
            app.run()
        return app.panel()

    port = int(port) or free_port(address)
    url = f"http://{address}:{port}/"
    print(f"cartsim dosing what-if app: open {url} in a browser (Ctrl+C stops it)", flush=True)
    return pn.serve({"/": page}, port=port, address=address, show=show, threaded=threaded,
                    title="cartsim dosing what-if", websocket_origin=[f"{address}:{port}",
                                                                      f"localhost:{port}"],
                    **kwargs)


def main(argv=None) -> None:
    """Command line of ``cartsim-app``."""
    parser = argparse.ArgumentParser(prog="cartsim-app", description=__doc__)
    parser.add_argument("--port", type=int, default=5006, help="port (0: any free one)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to listen on (default: this computer only)")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.add_argument("--patients", type=int, default=50,
                        help="virtual patients per scenario at start")
    parser.add_argument("--run", action="store_true",
                        help="open with the starting comparison already run")
    args = parser.parse_args(argv)
    try:
        serve(args.port, address=args.address, show=args.show, n_cohort=args.patients,
              run=args.run)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
