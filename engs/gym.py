"""Agents through Gymnasium (``pip install 'engs[gym]'``)::

    from engs.gym import EngsWrapper, GatedAgent

The wrapper and the example agent live in :mod:`engs.shared.gym` and
:mod:`engs.shared.gym_agents`; this module is their stable public face.
"""

from __future__ import annotations

from engs.shared.gym import EngsInfo, EngsWrapper, MappingError, headless_engine
from engs.shared.gym_agents import EpsilonGreedy, GatedAgent

__all__ = [
    "EngsInfo",
    "EngsWrapper",
    "EpsilonGreedy",
    "GatedAgent",
    "MappingError",
    "headless_engine",
]
