"""moto's server in a process of its own, for the local stack.

moto keeps its backends in module globals, so a server thread inside the test process shares them with
every in-process ``mock_aws``: when a unit test's mock starts or stops, it resets the backends and the
local stack's table disappears under the browser tests that run on the same pytest worker. A child
process keeps the two apart, and the DynamoDB speed-ups stay out of the unit tests' stock moto.

The child prints the port it bound, then serves until its standard input closes: when the parent exits,
however it exits, the pipe closes and the server goes with it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from types import TracebackType
from typing import Self

__all__ = ["MotoServerProcess", "main"]


class MotoServerProcess:
    """``with MotoServerProcess() as moto:`` then point clients at ``moto.url``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "closedloop.local.moto_server", "--host", self.host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # blocks until the server listens, or the child died
        if not line.strip().isdigit():
            self._process.kill()
            raise RuntimeError(f"moto's server did not start (exit code {self._process.wait()})")
        self.port = int(line)
        self._process.stdout.close()
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    from closedloop.local import moto_speedups

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    moto_speedups.install()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    # Nobody reads the pipe after the port: anything else written to it would fill it and block the server.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in `make serve` reaches the whole process group
        sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
