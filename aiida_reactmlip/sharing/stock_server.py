"""Serve an OPTIMADE JSONL export with the stock optimade-python-tools server (mongomock backend).

This is the server another group gets by loading our ``optimade-jsonl`` export into their own
optimade-python-tools deployment; nothing here touches AiiDA.

Example::

    python -m aiida_reactmlip.sharing.stock_server labels.jsonl --port 5001
"""

from __future__ import annotations

import argparse
import os

__all__ = ("create_stock_app", "main")


def create_stock_app(jsonl_path: str | os.PathLike, base_url: str | None = None):
    """A FastAPI app of the stock optimade server with ``jsonl_path`` loaded into mongomock."""
    from optimade.server.create_app import create_app

    from aiida_reactmlip.sharing.export import stock_server_config

    return create_app(stock_server_config(jsonl_path, base_url=base_url))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m aiida_reactmlip.sharing.stock_server FILE [--host H] [--port P]``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", nargs="?", help="OPTIMADE JSONL file (reactmlip dataset export PK FILE --format optimade-jsonl)")
    parser.add_argument("--plain", action="store_true",
                        help="Serve optimade's own test structures instead (no _reactmlip_ fields)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    base_url = f"http://{args.host}:{args.port}"
    if args.plain:
        from optimade.server.config import ServerConfig
        from optimade.server.create_app import create_app

        app = create_app(ServerConfig(insert_test_data=True, database_backend="mongomock", base_url=base_url))
    else:
        if not args.jsonl or not os.path.isfile(args.jsonl):
            parser.error(f"no such file: {args.jsonl}")
        app = create_stock_app(args.jsonl, base_url=base_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
