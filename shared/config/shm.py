"""``[shm]``: the shared-memory region."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from engs.shared.config.base import (
    Section,
)


class ShmConfig(Section, frozen=True):
    """The shared-memory region."""

    max_areas: Annotated[int, Meta(ge=1, le=1024)] = 16
    """Rows reserved for per-area arrays in the layout (areas in use may be fewer)."""
    lock_memory: bool = True
    """mlock the mapping in every process (failure is reported, not fatal)."""
