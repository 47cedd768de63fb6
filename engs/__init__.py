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

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked for
    (importlib.metadata costs ~18 ms: every ``python -m engs...`` — the healthchecks run
    every few seconds — would pay it at import)."""
    if name != "__version__":
        raise AttributeError(f"module 'engs' has no attribute {name!r}")
    from importlib import metadata  # noqa: PLC0415 - lazy, see above

    try:
        version = metadata.version("engs")
    except metadata.PackageNotFoundError:  # a bare checkout that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version
