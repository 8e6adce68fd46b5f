"""Shared by the Python service tests in this folder (run as scripts, so this
folder is on sys.path): a free loopback port and the bundled model's path."""

import os
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixture_model_dir() -> str:
    """stories260K under $CALDERA_FIXTURES_DIR, else the bundled models/ of the repo."""
    root = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "models")
    return os.path.normpath(os.path.join(root, "stories260K"))
