"""Emitter nuclei, target areas and the projection graph between them (seed 002 §1, §7).

Owns the *data* of the area model: which nuclei exist, which neuromodulators each one
synthesises, and which projections (edges) carry which neuromodulators into which
physics areas. The default list ships as ``projections.toml`` next to this module (with
the anatomy it follows cited per entry); ``orchestrator.areas`` can point at another
file or replace the lists inline.

Sites are numbered nuclei first, then the physics areas in ``physics.areas`` order.
Targets resolve by role: a projection to ``limbic`` reaches every area whose role is
limbic; an area's role is its name when the name is a role, else
``orchestrator.areas.roles[name]``, else ``default_role`` (``association``: the diffuse
cortical pattern every modulatory system has), so any set of area names works.

Invariants (checked when the graph is built; a violation is a ConfigError naming the
entry): unique nucleus names that are not area names; every projection's source is a
nucleus or an area and carries only what its source synthesises; no self-loops; every
area receives every neuromodulator (an area without dopamine would sit at zero and lock
its plasticity, seed 003 §3.3). Edges are merged per (source, target) pair in order of
first appearance, so the graph and its signature are deterministic.

Readers: :mod:`model` (builds the graph once), :mod:`bench` (synthetic graphs).
"""

from __future__ import annotations

import tomllib
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from engs.shared.config import AreasConfig, NucleusSpec, ProjectionSpec
from engs.shared.errors import ConfigError
from engs.shared.layout import N_NT, NEUROMODULATORS

NT_INDEX: dict[str, int] = {name: i for i, name in enumerate(NEUROMODULATORS)}
ROLES: tuple[str, ...] = ("sensory", "motor", "association", "limbic")
DEFAULT_FILE = "projections.toml"

F64Array = np.ndarray[Any, np.dtype[np.float64]]
I64Array = np.ndarray[Any, np.dtype[np.int64]]


class ProjectionsFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The schema of a projections file (the shipped default or a user's)."""

    nucleus: list[NucleusSpec]
    projection: list[ProjectionSpec]


@dataclass(frozen=True)
class Graph:
    """The resolved projection graph. ``K`` sites (nuclei, then areas), ``E`` edges.

    Arrays (read-only by convention):
    ``profile``  float64 (K, 7): 1 where the site synthesises the NT (nuclei only);
    ``src``, ``tgt``  int64 (E,): source and target site of each edge;
    ``mask``     float64 (E, 7): 1 where the edge carries the NT;
    ``weight``   float64 (E, 7): relative innervation density (0 where not carried).
    """

    sites: tuple[str, ...]
    n_nuclei: int
    areas: tuple[str, ...]
    roles: tuple[str, ...]
    profile: F64Array
    src: I64Array
    tgt: I64Array
    mask: F64Array
    weight: F64Array
    edge_names: tuple[str, ...]

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def n_edges(self) -> int:
        return len(self.src)

    @property
    def n_areas(self) -> int:
        return len(self.areas)

    def signature(self) -> int:
        """CRC-32 of everything that shapes the learned arrays: a checkpoint taken with
        another graph is refused rather than misread."""
        parts: list[bytes] = [
            repr(self.sites).encode(),
            str(self.n_nuclei).encode(),
            self.profile.tobytes(),
            self.src.tobytes(),
            self.tgt.tobytes(),
            self.mask.tobytes(),
            self.weight.tobytes(),
        ]
        crc = 0
        for p in parts:
            crc = zlib.crc32(p, crc)
        return crc


def load_file(path: str | None = None) -> ProjectionsFile:
    """Decode a projections file (``None``: the shipped default)."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read projections file {path}: {exc.strerror}") from exc
        where = path
    else:
        text = resources.files(__package__).joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
        where = DEFAULT_FILE
    try:
        data = tomllib.loads(text)
        return msgspec.convert(data, ProjectionsFile, strict=True)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"projections file {where}: not valid TOML: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise ConfigError(f"projections file {where}: {exc}") from exc


def area_roles(areas: tuple[str, ...], cfg: AreasConfig) -> tuple[str, ...]:
    """The role of each area (see the module docstring)."""
    return tuple(a if a in ROLES else cfg.roles.get(a, cfg.default_role) for a in areas)


def build_graph(areas: tuple[str, ...] | list[str], cfg: AreasConfig) -> Graph:
    """Resolve nuclei and projections against the physics areas."""
    areas = tuple(areas)
    file = None
    if not cfg.nuclei or not cfg.projections:
        file = load_file(cfg.projections_file or None)
    nuclei = cfg.nuclei or (file.nucleus if file else [])
    projections = cfg.projections or (file.projection if file else [])
    n_where = "`$.orchestrator.areas.nuclei`" if cfg.nuclei else "the projections file"
    p_where = "`$.orchestrator.areas.projections`" if cfg.projections else "the projections file"
    roles = area_roles(areas, cfg)

    names = [n.name for n in nuclei]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"{n_where}: nucleus names must be unique, {dup} repeated")
    clash = sorted(set(names) & set(areas))
    if clash:
        raise ConfigError(f"{n_where}: nuclei {clash} have the names of physics areas")
    sites = (*names, *areas)
    index = {name: i for i, name in enumerate(sites)}
    profile = np.zeros((len(sites), N_NT))
    for i, nu in enumerate(nuclei):
        for nt in nu.nt:
            profile[i, NT_INDEX[nt]] = 1.0

    pairs: dict[tuple[int, int], int] = {}
    masks: list[np.ndarray[Any, Any]] = []
    weights: list[np.ndarray[Any, Any]] = []
    for k, pr in enumerate(projections):
        where = f"{p_where} entry {k} ({pr.source} -> {pr.target})"
        if pr.source not in index:
            raise ConfigError(f"{where}: source is neither a nucleus nor a physics area")
        s = index[pr.source]
        if s < len(nuclei):
            made = {nt for nt in nuclei[s].nt}
            nts = list(pr.nt) or sorted(made, key=NT_INDEX.__getitem__)
            extra = sorted(set(nts) - made, key=NT_INDEX.__getitem__)
            if extra:
                raise ConfigError(f"{where}: the source does not synthesise {extra}")
        else:
            if not pr.nt:
                raise ConfigError(f"{where}: an area source must list the `nt` it carries")
            nts = list(pr.nt)
        if pr.target == "*":
            targets = list(range(len(areas)))
        elif pr.target in areas:
            targets = [areas.index(pr.target)]
        elif pr.target in ROLES:
            targets = [i for i, r in enumerate(roles) if r == pr.target]
        else:
            raise ConfigError(
                f"{where}: target is neither a physics area {list(areas)}, a role "
                f"{list(ROLES)} nor '*'"
            )
        for a in targets:
            t = len(nuclei) + a
            if t == s:
                raise ConfigError(f"{where}: an area cannot project into itself")
            e = pairs.setdefault((s, t), len(masks))
            if e == len(masks):
                masks.append(np.zeros(N_NT))
                weights.append(np.zeros(N_NT))
            for nt in nts:
                masks[e][NT_INDEX[nt]] = 1.0
                weights[e][NT_INDEX[nt]] += pr.weight

    src = np.array([s for s, _ in pairs], dtype=np.int64)
    tgt = np.array([t for _, t in pairs], dtype=np.int64)
    mask = np.array(masks).reshape(len(pairs), N_NT)
    weight = np.array(weights).reshape(len(pairs), N_NT)
    received = np.zeros((len(sites), N_NT))
    np.add.at(received, tgt, mask)
    missing = [
        f"{areas[a]}:{NEUROMODULATORS[n]}"
        for a in range(len(areas))
        for n in range(N_NT)
        if received[len(nuclei) + a, n] == 0.0
    ]
    if missing:
        raise ConfigError(
            f"{p_where}: every area must receive every neuromodulator; nothing reaches "
            f"{', '.join(missing)} (area roles: {dict(zip(areas, roles, strict=True))})"
        )
    return Graph(
        sites=sites,
        n_nuclei=len(nuclei),
        areas=areas,
        roles=roles,
        profile=profile,
        src=src,
        tgt=tgt,
        mask=mask,
        weight=weight,
        edge_names=tuple(f"{sites[s]}->{sites[t]}" for s, t in pairs),
    )


def synthetic_graph(n_edges: int, seed: int = 0) -> Graph:
    """A random graph of ``n_edges`` edges, each carrying all seven NTs, for the bench.

    Nuclei synthesise every NT; one area per 25 edges (at least 4) and enough nuclei
    that nucleus→area pairs alone could hold every edge; each area first receives one
    nucleus edge, the rest are random distinct nucleus→area (80 %) and area→area (20 %)
    pairs. 100 / 1 000 / 10 000 edges: 4 / 40 / 400 areas and 25 nuclei.
    """
    rng = np.random.default_rng(seed)
    n_areas = max(4, n_edges // 25)
    n_nuc = max(2, -(-n_edges // n_areas))
    k = n_nuc + n_areas
    first = [(int(rng.integers(n_nuc)), n_nuc + a) for a in range(n_areas)]
    chosen = set(first)
    pairs = list(first)
    n_nuc_pairs = n_nuc * n_areas
    while len(pairs) < n_edges:
        if rng.random() < 0.8 or n_areas < 2:
            i = int(rng.integers(n_nuc_pairs))
            pair = (i // n_areas, n_nuc + i % n_areas)
        else:
            s, t = rng.choice(n_areas, size=2, replace=False)
            pair = (n_nuc + int(s), n_nuc + int(t))
        if pair not in chosen:
            chosen.add(pair)
            pairs.append(pair)
        if len(chosen) >= n_nuc_pairs + n_areas * (n_areas - 1):
            break
    e = len(pairs)
    profile = np.zeros((k, N_NT))
    profile[:n_nuc] = 1.0
    sites = (*(f"n{i}" for i in range(n_nuc)), *(f"a{i}" for i in range(n_areas)))
    src = np.array([p[0] for p in pairs], dtype=np.int64)
    tgt = np.array([p[1] for p in pairs], dtype=np.int64)
    return Graph(
        sites=sites,
        n_nuclei=n_nuc,
        areas=sites[n_nuc:],
        roles=("association",) * n_areas,
        profile=profile,
        src=src,
        tgt=tgt,
        mask=np.ones((e, N_NT)),
        weight=rng.uniform(0.5, 1.5, size=(e, N_NT)),
        edge_names=tuple(f"{sites[s]}->{sites[t]}" for s, t in pairs),
    )
