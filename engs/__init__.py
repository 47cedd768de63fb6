"""ENGS — the Extended Neurochemical Gating System.

The one top-level package the project installs. Its sources stay where the repository
layout puts them: :mod:`engs.shared` is the repository's ``shared/`` folder (what crosses
a process boundary) and :mod:`engs.services` its ``services/`` folder (one sub-package per
process, plus the CLI); in the checkout ``engs/shared`` and ``engs/services`` are links to
them, in an installed wheel they are copies.

The public, stable imports for agents are short:

* :mod:`engs.client` — ``SignalClient`` and ``AsyncSignalClient`` (the signal socket);
* :mod:`engs.gym` — the Gymnasium wrapper (``pip install 'engs[gym]'``).
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("engs")
except _metadata.PackageNotFoundError:  # a bare checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
