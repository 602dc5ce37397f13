"""A free TCP port on 127.0.0.1, for the tests that start a server or probe a closed port (the
study tests and the integration tests share it: tests/ is on sys.path for both)."""

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
