"""The harness every assay runs under: one ``run`` signature, one clock, one result.

Each assay module (lesions, rpe, risk, foraging, causality, stability, homeostasis)
writes only its measurement, ``measure(ctx, params, **options) -> Findings``, and
exposes ``run = Assay(NAME, TITLE, __doc__, measure).run``. :meth:`Assay.run` is the
signature every caller uses (``engs validate``, the tests)::

    run(cfg, params, *, seed=0, jobs=1, progress=None, mechanisms=None, **options)

It bundles the run-wide arguments into a :class:`Context`, times the measurement on
``time.monotonic`` and turns its :class:`Findings` into the :class:`AssayResult`,
naming the assay and taking its method from the module docstring (the text after the
first paragraph). ``options`` are the assay's own keywords (causality's
``lesion_params`` and ``entropy``, stability's ``coupling``, homeostasis's
``homeostat``), passed through to its ``measure``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from engs.services.validate.report import AssayResult, Prediction
from engs.services.validate.runner import Progress
from engs.services.validate.sim import Mechanisms
from engs.shared.config import Config

ParamsT = TypeVar("ParamsT")


class Context(NamedTuple):
    """What every run of an assay is given besides its parameters (unpacked in
    this order: ``cfg, seed, jobs, progress, mechanisms = ctx``)."""

    cfg: Config
    seed: int = 0
    jobs: int = 1
    """Processes for the assay's independent simulations (:func:`runner.pmap`)."""
    progress: Progress | None = None
    mechanisms: Mechanisms | None = None
    """Mechanisms replaced for a flip test; None: the ENGS's own."""


class Findings(msgspec.Struct, kw_only=True):
    """What an assay's measurement found: the :class:`AssayResult` less its name,
    title, method and time, which the harness fills in."""

    predictions: list[Prediction]
    numbers: dict[str, Any] = msgspec.field(default_factory=dict)
    notes: list[str] = msgspec.field(default_factory=list)
    series: dict[str, Any] = msgspec.field(default_factory=dict)


def method_of(doc: str | None) -> str:
    """A module docstring's method: everything after its first paragraph."""
    return doc.split("\n\n", 1)[1].strip() if doc else ""


class Assay(Generic[ParamsT]):
    """One assay: its name, title and method, and its measurement."""

    def __init__(
        self,
        name: str,
        title: str,
        doc: str | None,
        measure: Callable[..., Findings],
    ) -> None:
        self.name = name
        self.title = title
        self.method = method_of(doc)
        self.measure = measure

    def run(
        self,
        cfg: Config,
        params: ParamsT,
        *,
        seed: int = 0,
        jobs: int = 1,
        progress: Progress | None = None,
        mechanisms: Mechanisms | None = None,
        **options: Any,
    ) -> AssayResult:
        """Measure under ``cfg`` and ``params``; the result is timed and named."""
        t0 = time.monotonic()
        found = self.measure(Context(cfg, seed, jobs, progress, mechanisms), params, **options)
        return AssayResult(
            name=self.name,
            title=self.title,
            method=self.method,
            elapsed_s=time.monotonic() - t0,
            **msgspec.structs.asdict(found),
        )
