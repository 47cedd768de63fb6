"""The signal socket's Unix-domain listener: a private socket file, never a stolen one.

The file is created mode 0600 from birth (the umask at ``bind()``), so there is no
window in which another user could connect. A file left behind by a dead server is
replaced; a live server's socket, or anything that is not a socket, is refused.
"""

from __future__ import annotations

import logging
import os
import socket
import stat

from engs.shared.errors import ConfigError

log = logging.getLogger("engs.services.orchestrator.server")


def bind_unix(path: str) -> tuple[socket.socket, int]:
    """A stream socket bound at ``path`` (mode 0600) and the file's inode (to unlink
    it at shutdown only if it is still ours). ConfigError when the path is taken by a
    live server or a non-socket, or cannot be bound."""
    _clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        return sock, os.stat(path).st_ino
    except OSError as exc:
        sock.close()
        raise unix_bind_error(path, exc) from None


def unix_bind_error(path: str, exc: OSError) -> ConfigError:
    """The error of a Unix socket that cannot be bound or served."""
    return ConfigError(
        f"cannot bind the signal Unix socket {path}: {exc.strerror or exc} "
        f"- at `$.signals.unix_path`"
    )


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(
            f"signal Unix socket path {path} exists and is not a socket; refusing to "
            f"replace it - at `$.signals.unix_path`"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale signal socket %s (no server behind it)", path)
        os.unlink(path)
        return
    except OSError as exc:
        raise ConfigError(
            f"signal Unix socket {path} exists and cannot be probed: {exc.strerror or exc}"
        ) from None
    finally:
        probe.close()
    raise ConfigError(
        f"signal Unix socket {path} is in use by a running server - at `$.signals.unix_path`"
    )
