"""``s2f-serve``: a local web page that draws the face behind a voice (``make serve``).

Flags like ``s2f-infer``'s (not Hydra overrides); the page and its API are
:mod:`speech2face.web`'s, which needs the ``web`` extra (``pip install -e ".[web]"``).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import socket
import sys

from speech2face.cli import add_model_options
from speech2face.web import (
    CHUNK_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    HEAD_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_SECONDS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOADS,
    UPLOAD_TIMEOUT,
)

PROG = "s2f-serve"

EPILOG = f"""\
the page:
  Record from the microphone or drop an audio file (wav, flac, ogg, mp3, m4a, the audio of
  mp4/webm; up to {MAX_UPLOAD_BYTES // 2**20} MB, the first {MAX_SECONDS:g} s are used): the portrait, the gender
  and age of the portrait, and the spectrogram the model saw. Example voices with their
  true faces come from --gallery (default: demo/eval, else the one 'make demo' recorded).
  Nothing is fetched from the internet; uploads live in a temporary directory only while
  they are drawn.

the model:
  --checkpoint, else $S2F_HOME/models/default.pt (~/.cache/speech2face/models/default.pt),
  which 'make demo' / 's2f-demo' installs. It loads in the background: the page answers at
  once and says when the model is ready, or why it could not load.

another machine:
  The server listens on 127.0.0.1 only. From another machine, tunnel the port over SSH:
  ssh -N -L {DEFAULT_PORT}:127.0.0.1:{DEFAULT_PORT} USER@HOST, then open http://localhost:{DEFAULT_PORT}/
  there (browsers allow the microphone on localhost or https only). --host 0.0.0.0 serves
  everyone who can reach this machine, without authentication or encryption.

limits:
  It answers only to the host names it serves (127.0.0.1, localhost, [::1], the --host
  address; --allow-host adds one) and refuses uploads from other sites' pages. At most
  {MAX_CONNECTIONS} connections at once and {MAX_UPLOADS} uploads received at once; a connection must send
  its request's headers within {HEAD_TIMEOUT:g} s, an upload is dropped after {CHUNK_TIMEOUT:g} s without a byte
  or {UPLOAD_TIMEOUT:g} s in all. The open-file limit (ulimit -n) is raised to its hard limit at start.
"""  # noqa: E501


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A local web page: record or drop a voice, see the face the model draws.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"the address to listen on (default: {DEFAULT_HOST}, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"the port (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer to this host name (a name of this machine behind a proxy or in "
        "/etc/hosts; repeatable). Requests naming any other host are refused",
    )
    parser.add_argument(
        "--gallery",
        metavar="DIR",
        help="example voices: an s2f-eval output directory, or an s2f-demo one (default: "
        "demo/ when it holds an evaluation, else the demo's evaluation recorded beside the "
        "default model)",
    )
    add_model_options(parser)
    parser.add_argument(
        "--no-attributes",
        action="store_true",
        help="do not load the gender and age models (the page leaves that panel out)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=_megabytes,
        default=MAX_UPLOAD_BYTES / 2**20,
        metavar="MB",
        help=f"the largest audio file accepted (default: {MAX_UPLOAD_BYTES // 2**20})",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no line per portrait in the terminal"
    )
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535: {text!r}")
    return value


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be a positive number of megabytes: {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    from speech2face.cli import fail
    from speech2face.web import missing_extra

    args = build_parser().parse_args(argv)
    missing = missing_extra()
    if missing:
        fail(missing, prog=PROG)
    from speech2face.errors import S2FError
    from speech2face.web.gallery import find_gallery

    try:
        gallery = find_gallery(args.gallery)
    except S2FError as error:
        fail(str(error), prog=PROG)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    if not _loopback(args.host):
        print(
            f"{PROG}: warning: listening on {args.host}: anyone who can reach this machine can "
            "use the page (no password, no encryption), and browsers allow the microphone "
            f"only on localhost or https; an SSH tunnel is safer: ssh -N -L "
            f"{port}:127.0.0.1:{port} USER@HOST",
            file=sys.stderr,
            flush=True,
        )
    with contextlib.suppress(KeyboardInterrupt):
        serve(args, sock, gallery)
    print(f"{PROG}: stopped", flush=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a one-line error (in use, no such address)."""
    from speech2face.cli import fail

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        fail(f"--host {host}: {error.strerror or error}", prog=PROG)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        if error.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            fail(
                f"port {port} on {host} is in use (another s2f-serve?): pass --port N, or "
                "--port 0 for a free one",
                prog=PROG,
            )
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}", prog=PROG)
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(args: argparse.Namespace, sock: socket.socket, gallery) -> None:
    """Run the server on ``sock`` until Ctrl-C (or SIGTERM)."""
    import uvicorn

    from speech2face.web import Limits
    from speech2face.web.app import create_app
    from speech2face.web.engine import Engine
    from speech2face.web.server import (
        allowed_hosts,
        fitting,
        raise_open_file_limit,
        uvicorn_config,
    )

    _logging(args.quiet)
    limits = fitting(Limits(), raise_open_file_limit())
    engine = Engine(
        args.checkpoint,
        device=args.device,
        fast=not args.precise,
        attributes=not args.no_attributes,
    )
    app = create_app(
        engine,
        gallery,
        max_upload_bytes=round(args.max_upload_mb * 2**20),
        limits=limits,
        hosts=allowed_hosts(args.host, args.allow_host),
    )
    config = uvicorn_config(
        app, limits, log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    port = sock.getsockname()[1]
    where = args.checkpoint or "the default model"
    print(
        f"{PROG}: {url_of(args.host, port)} (Ctrl-C stops); loading {where} in the background",
        flush=True,
    )
    watch = _Watch(engine)
    watch.start()
    server.run(sockets=[sock])


class _Watch:
    """Says in the terminal, once, when the model is ready or why it failed to load."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def start(self) -> None:
        import threading

        threading.Thread(target=self._run, name="s2f-serve-watch", daemon=True).start()

    def _run(self) -> None:
        import time

        engine = self.engine
        while engine.state == "loading":
            time.sleep(0.1)
        if engine.state == "ready":
            model = engine.model.description
            print(
                f"{PROG}: model ready in {engine.load_seconds:.1f} s ({model['portrait_px']}x"
                f"{model['portrait_px']} portraits, {model['window_seconds']:g} s windows, "
                f"{model['device']}); {engine.model.attributes_note}",
                flush=True,
            )
        else:
            print(
                f"{PROG}: error: {engine.message} (the page stays up and says so)",
                file=sys.stderr,
                flush=True,
            )


def _logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger = logging.getLogger("speech2face.web")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


if __name__ == "__main__":
    main()
