"""Atomic checkpoint files.

A checkpoint is one msgspec Struct encoded as JSON (floats round-trip exactly: msgspec
writes the shortest repr that parses back to the same double). Writing is atomic with
respect to crashes at any instant, including SIGKILL and power loss::

    write <path>.tmp → fsync(file) → rename(<path>.tmp, <path>) → fsync(directory)

so ``<path>`` always names either the previous complete checkpoint or the new complete
one, never a partial file; a reader only ever opens ``<path>``. The temp name is fixed
(one writer per path — the orchestrator process), so a temp left by a killed writer is
simply truncated and overwritten by the next save.

Not for the control cycle itself (it blocks on the disk): the caller saves from a
worker thread or between cycles at a low rate, from a ``state_dict()`` snapshot taken on
the loop's thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import msgspec

from engs.shared.errors import EngsError

T = TypeVar("T", bound=msgspec.Struct)


class CheckpointError(EngsError):
    """A checkpoint file exists but cannot be used (corrupt, or of another format)."""


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)  # make the rename itself durable
    finally:
        os.close(dfd)


def save_checkpoint(path: str | os.PathLike[str], state: msgspec.Struct) -> None:
    """Encode ``state`` as JSON and write it atomically to ``path``."""
    write_atomic(path, msgspec.json.encode(state))


def load_checkpoint(path: str | os.PathLike[str], kind: type[T]) -> T:
    """Decode the checkpoint at ``path`` as ``kind``.

    Raises FileNotFoundError when there is none, CheckpointError when it does not
    decode (the message carries msgspec's field path)."""
    data = Path(path).read_bytes()
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise CheckpointError(f"checkpoint {path} is not a valid {kind.__name__}: {exc}") from None
