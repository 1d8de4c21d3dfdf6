"""``s3result serve``: the testing kit's local S3 store in the foreground, for development and CI.

It is the store the project's own tests use (``s3result.testing.store.MotoServer``): moto's
server on 127.0.0.1 with SigV4 auth on, so a wrong key fails as it would on S3, and atomic
conditional writes, so native chords behave as on S3. It prints what a worker needs (the
``AWS_*`` lines to export and the ``result_backend`` URL) and runs until Ctrl-C or SIGTERM.
moto keeps everything in memory and cannot persist it: ``--data`` says so in one line and exits.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time
from types import FrameType
from typing import TextIO
from urllib.parse import quote

__all__ = ["add_serve_arguments", "serve"]

#: The port the docs' examples use; ``--port`` picks another.
DEFAULT_PORT = 9000
#: The bucket the docs' minimal app uses.
DEFAULT_BUCKET = "my-bucket"
#: The prefix the printed ``result_backend`` URL puts results under.
PREFIX = "celery"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``--port`` and ``--bucket``, each with its help."""
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"the port on 127.0.0.1 to listen on (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--bucket",
        default=DEFAULT_BUCKET,
        help=f"the bucket to create in the store (default {DEFAULT_BUCKET})",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="keep the store's data in DIR: not possible, moto keeps everything in memory (serve says so and exits)",
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (1 to 65535)")
    return port


class ServeError(Exception):
    """What stops ``serve`` before or while it runs: one line, exit status 1."""


def _missing_server() -> str | None:
    """Why moto's server cannot run here, or None: the ``testing`` extra brings it."""
    try:
        import moto.server  # noqa: F401 - the server's web stack (flask, werkzeug) comes with moto[server]
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Start the store, print how to point Celery at it, and wait for Ctrl-C (exit 0)."""
    out = out or sys.stdout
    if args.data is not None:
        raise ServeError(
            f"--data {args.data}: this store cannot persist (moto keeps everything in memory and loses it when it "
            "stops); run without --data, or point result_backend at a store that keeps its data"
        )
    from ..errors import ConfigError
    from ..results.config import build

    try:
        build(url=f"s3result+http://127.0.0.1:{args.port}/{args.bucket}/{PREFIX}", environ={})
    except ConfigError as exc:
        raise ServeError(f"--bucket {args.bucket!r}: {exc.detail}") from None
    missing = _missing_server()
    if missing is not None:
        raise ServeError(f"needs moto's server ({missing}): pip install 's3result[testing]'")
    if _port_taken(args.port):
        raise ServeError(f"port {args.port} on 127.0.0.1 is in use (another store?); pick another with --port")
    from ..testing.store import MotoServer

    store = MotoServer(bucket=args.bucket, port=args.port, own_process_group=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        try:
            store.start()
        except RuntimeError as exc:
            raise ServeError(str(exc).splitlines()[0]) from None
        out.write(_banner(store))
        out.flush()
        while store.running:
            time.sleep(0.2)
        raise ServeError(f"the store on {store.endpoint} stopped by itself (moto server exited)")
    except KeyboardInterrupt:
        sys.stderr.write("s3result serve: stopped\n")
        return 0
    finally:
        # A second Ctrl-C while the server stops would end in a traceback: stopping takes a moment.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            store.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)


def _banner(store: object) -> str:
    from ..testing.store import MotoServer

    assert isinstance(store, MotoServer)
    endpoint, bucket = store.endpoint, store.bucket
    # Percent-encoded: a raw '/' in the secret (moto's often hold one) defeats Celery's own masking
    # (kombu's maybe_sanitize_url cannot parse the URL, and celery report prints it whole).
    keys = f"{quote(store.access_key, safe='')}:{quote(store.secret_key, safe='')}"
    url = f"s3result+http://{keys}@{endpoint.split('://', 1)[1]}/{bucket}/{PREFIX}"
    return (
        f"s3result serve: a local S3 store on {endpoint}, bucket {bucket} "
        "(moto server, SigV4 auth on, atomic conditional writes)\n"
        "It keeps everything in memory: results are gone when it stops (moto cannot persist them).\n"
        "\n"
        "Export these where your worker and your app run:\n"
        "\n"
        f"export AWS_ENDPOINT_URL_S3={endpoint}\n"
        f"export AWS_ACCESS_KEY_ID={store.access_key}\n"
        f"export AWS_SECRET_ACCESS_KEY={store.secret_key}\n"
        "export AWS_REGION=us-east-1\n"
        "\n"
        "and set:\n"
        "\n"
        f'result_backend = "s3result://{bucket}/{PREFIX}"\n'
        "\n"
        "or, without the exports (the keys in the URL):\n"
        "\n"
        f'result_backend = "{url}"\n'
        "\n"
        "Ctrl-C stops it.\n"
    )
