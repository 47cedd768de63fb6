"""``engs config``: the effective configuration, each value with where it came from.

Sources, in the order :func:`engs.shared.config.load_config` applies them (a later one
wins): ``default`` (the built-in value), ``file PATH`` (``--config`` or
``ENGS_CONFIG``), ``env VAR`` (:data:`engs.shared.config.ENV_OVERRIDES`), ``flag
--NAME`` (e.g. ``--instance``). The values are the loaded, validated ``Config``; the
sources are read from the same inputs in the same order.

The table form is TOML (``key = value  # source``) that ``--config`` accepts back; a key
with no value (a ``None`` field) is shown commented out. ``--json`` prints
``{"dotted.key": {"value": ..., "source": ...}}``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from engs import __version__
from engs.shared.config import ENV_OVERRIDES, Config

Key = tuple[str, ...]


def sources(
    path: str | None,
    overrides: Mapping[str, tuple[Key, Any]],
    env: Mapping[str, str] | None = None,
) -> dict[Key, str]:
    """The source of every field a file, the environment or a flag set (the rest are
    defaults). ``path`` as given to ``load_config`` (None: ``ENGS_CONFIG``)."""
    env = os.environ if env is None else env
    out: dict[Key, str] = {}
    if path is None and env.get("ENGS_CONFIG"):
        path = env["ENGS_CONFIG"]
    if path is not None:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))  # load_config read it
        for key in _leaves(data):
            out[key] = f"file {path}"
    for var, field in ENV_OVERRIDES.items():
        if env.get(var):
            out[field] = f"env {var}"
    for label, (field, _) in overrides.items():
        out[field] = f"flag {label}"
    return out


def _leaves(d: Mapping[str, Any], prefix: Key = ()) -> list[Key]:
    """Dotted keys of every value that is not a table (arrays are values)."""
    keys: list[Key] = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            keys.extend(_leaves(v, (*prefix, k)))
        else:
            keys.append((*prefix, k))
    return keys


def source_of(key: Key, src: Mapping[Key, str]) -> str:
    """A key's source; a key under an array-of-tables or inline table set as a whole
    takes its parent's."""
    for n in range(len(key), 0, -1):
        if key[:n] in src:
            return src[key[:n]]
    return "default"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, Mapping):
        items = ", ".join(f"{k} = {_toml(x)}" for k, x in v.items() if x is not None)
        return "{" + items + "}"
    raise TypeError(f"no TOML form for {v!r}")


def render(cfg: Config, src: Mapping[Key, str]) -> str:
    """The configuration as TOML with a source comment on each line."""
    data = msgspec.to_builtins(cfg)
    lines = [
        f"# Effective configuration of instance {cfg.instance!r} (engs {__version__}).",
        "# Each value's source: default, file PATH, env VAR or flag --NAME (later wins).",
    ]

    def table(d: Mapping[str, Any], prefix: Key) -> None:
        subtables = []
        for k, v in d.items():
            key = (*prefix, k)
            if isinstance(v, Mapping):
                subtables.append((k, v))
                continue
            where = source_of(key, src)
            if v is None:
                lines.append(f"# {k} = (unset)  # {where}")
            else:
                lines.append(f"{k} = {_toml(v)}  # {where}")
        for k, v in subtables:
            lines.append("")
            lines.append(f"[{'.'.join((*prefix, k))}]")
            table(v, (*prefix, k))

    table(data, ())
    return "\n".join(lines)


def as_json(cfg: Config, src: Mapping[Key, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def walk(d: Mapping[str, Any], prefix: Key) -> None:
        for k, v in d.items():
            key = (*prefix, k)
            if isinstance(v, Mapping):
                walk(v, key)
            else:
                out[".".join(key)] = {"value": v, "source": source_of(key, src)}

    walk(msgspec.to_builtins(cfg), ())
    return out


def run(
    cfg: Config,
    path: str | None,
    overrides: Mapping[str, tuple[Key, Any]],
    *,
    json_out: bool,
) -> int:
    src = sources(path, overrides)
    if json_out:
        sys.stdout.write(msgspec.json.encode(as_json(cfg, src)).decode() + "\n")
    else:
        sys.stdout.write(render(cfg, src) + "\n")
    return 0
