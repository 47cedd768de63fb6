"""Render the configuration reference (docs/config.md) from the Structs themselves:
names, types, defaults and constraints from ``msgspec.inspect``, meanings from the
attribute docstrings in ``shared/config/``. A test keeps the document equal to this."""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import pkgutil
from typing import Any

import msgspec
import msgspec.inspect as mi

from engs.shared import config as config_module
from engs.shared.config import ENV_OVERRIDES, Config


def _section_sources() -> list[ast.Module]:
    """The parsed source of every module of the configuration package."""
    names = sorted(m.name for m in pkgutil.iter_modules(config_module.__path__))
    modules = [
        config_module,
        *(importlib.import_module(f"{config_module.__name__}.{n}") for n in names),
    ]
    return [ast.parse(inspect.getsource(m)) for m in modules]


def _attribute_docs() -> dict[tuple[str, str], str]:
    """{(class name, field name): docstring} for every ``field: T = x`` + string literal."""
    docs: dict[tuple[str, str], str] = {}
    for node in (n for tree in _section_sources() for n in ast.walk(tree)):
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for a, b in itertools.pairwise(body):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)
            ):
                docs[(node.name, a.target.id)] = " ".join(b.value.value.split())
    return docs


def _type_name(t: mi.Type) -> str:
    match t:
        case mi.FloatType():
            return "float"
        case mi.IntType():
            return "int"
        case mi.BoolType():
            return "bool"
        case mi.StrType():
            return "string"
        case mi.LiteralType():
            return " \\| ".join(repr(v) for v in t.values)
        case mi.ListType() | mi.VarTupleType():
            return f"list of {_type_name(t.item_type)}"
        case mi.UnionType():
            return " or ".join(_type_name(x) for x in t.types)
        case mi.NoneType():
            return "none"
        case mi.StructType():
            return "table"
        case _:
            return type(t).__name__.removesuffix("Type").lower()


def _constraints(t: mi.Type) -> str:
    parts = []
    names = {
        "gt": ">",
        "ge": "≥",
        "lt": "<",
        "le": "≤",
        "min_length": "length ≥",
        "max_length": "length ≤",
        "pattern": "matches",
    }
    for attr, sym in names.items():
        v = getattr(t, attr, None)
        if v is not None:
            parts.append(f"{sym} `{v}`")
    if isinstance(t, mi.ListType | mi.VarTupleType):
        inner = _constraints(t.item_type)
        if inner:
            parts.append(f"each {inner}")
    return ", ".join(parts)


def _default(f: mi.Field) -> str:
    if f.default is not mi.NODEFAULT:
        v = f.default
    elif f.default_factory is not mi.NODEFAULT:
        v = f.default_factory()
    else:
        return "required"
    if isinstance(v, msgspec.Struct):
        return "(table)"
    return f"`{msgspec.json.encode(v).decode()}`"


def describe() -> str:
    docs = _attribute_docs()
    info: Any = mi.type_info(Config)
    env_for = {".".join(path): var for var, path in ENV_OVERRIDES.items()}
    lines: list[str] = []

    def section(st: mi.StructType, prefix: str) -> None:
        cls = st.cls
        title = f"`[{prefix}]`" if prefix else "top level"
        lines.extend(["", f"### {title}", ""])
        if cls.__doc__:
            lines.extend([" ".join(cls.__doc__.split()), ""])
        lines.append("| key | type | default | constraints | meaning |")
        lines.append("| --- | --- | --- | --- | --- |")
        nested = []
        for f in st.fields:
            key = f"{prefix}.{f.name}" if prefix else f.name
            if isinstance(f.type, mi.StructType):
                nested.append((f.type, key))
                continue
            meaning = docs.get((cls.__name__, f.name), "")
            if key in env_for:
                meaning += f" Environment: `{env_for[key]}`."
            lines.append(
                f"| `{f.name}` | {_type_name(f.type)} | {_default(f)} | "
                f"{_constraints(f.type)} | {meaning.strip()} |"
            )
        for sub, key in nested:
            section(sub, key)

    section(info, "")
    return "\n".join(lines).strip() + "\n"


if __name__ == "__main__":
    print(describe(), end="")
