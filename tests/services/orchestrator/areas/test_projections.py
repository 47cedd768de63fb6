"""The projection graph: the shipped default, any area names, overrides, and errors
that name the offending entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engs.services.orchestrator.areas.projections import build_graph, load_file
from engs.shared.errors import ConfigError
from engs.shared.layout import N_NT
from tests.services.orchestrator.helpers import make_config

AREAS = ("sensory", "motor", "association", "limbic")


def _graph(areas: tuple[str, ...] = AREAS, **values: object):  # type: ignore[no-untyped-def]
    cfg = make_config({f"orchestrator.areas.{k}": v for k, v in values.items()})
    return build_graph(areas, cfg.orchestrator.areas)


def test_the_shipped_default_reaches_every_area_with_every_neuromodulator() -> None:
    g = _graph()
    assert g.sites[: g.n_nuclei] == ("vta", "snc", "drn", "mrn", "lc", "pvn", "hpg", "tmn", "lh")
    assert g.sites[g.n_nuclei :] == AREAS and g.n_edges == 29
    received = np.zeros((g.n_sites, N_NT))
    np.add.at(received, g.tgt, g.mask)
    assert np.all(received[g.n_nuclei :] >= 1)
    assert np.all(g.profile.sum(axis=1)[: g.n_nuclei] == 1)  # one NT per nucleus
    w = {name: g.weight[e].sum() for e, name in enumerate(g.edge_names)}
    assert w["vta->limbic"] == 1.2 and w["snc->motor"] == 1.0 and w["vta->sensory"] == 0.6
    assert all(d.cite for d in load_file().nucleus)


def test_any_area_names_map_by_role_or_to_the_default_pattern() -> None:
    areas = ("v1", "hippocampus", "pfc", "m1")
    g = _graph(areas, roles={"v1": "sensory", "hippocampus": "limbic", "m1": "motor"})
    assert g.roles == ("sensory", "limbic", "association", "motor")
    names = set(g.edge_names)
    assert {"vta->hippocampus", "mrn->hippocampus", "snc->m1", "vta->pfc", "vta->v1"} <= names
    assert "snc->pfc" not in names
    # unknown names all take the default role: the association (diffuse cortical) pattern
    plain = _graph(("a", "b"))
    assert plain.roles == ("association", "association")
    assert "vta->a" in plain.edge_names and "snc->a" not in plain.edge_names


def _default_projections() -> list[dict[str, object]]:
    return [
        {"source": p.source, "target": p.target, "weight": p.weight, "nt": list(p.nt)}
        for p in load_file().projection
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"source": "nowhere", "target": "limbic"}, "source is neither a nucleus nor a physics"),
        ({"source": "vta", "target": "limbic", "nt": ["5HT"]}, "does not synthesise ['5HT']"),
        ({"source": "vta", "target": "cortex"}, "target is neither a physics area"),
        ({"source": "limbic", "target": "limbic", "nt": ["DA"]}, "cannot project into itself"),
        ({"source": "limbic", "target": "motor"}, "an area source must list the `nt`"),
    ],
)
def test_bad_projections_are_refused_naming_the_entry(bad: dict[str, object], message: str) -> None:
    projections = [*_default_projections(), bad]
    with pytest.raises(ConfigError) as info:
        _graph(projections=projections)
    text = str(info.value)
    assert f"`$.orchestrator.areas.projections` entry {len(projections) - 1}" in text
    assert message in text


def test_an_area_left_without_a_neuromodulator_is_refused() -> None:
    projections = [p for p in _default_projections() if p["source"] != "snc"]
    with pytest.raises(ConfigError, match=r"nothing reaches motor:DA \(area roles"):
        _graph(projections=projections)


def test_a_projections_file_replaces_the_default(tmp_path: Path) -> None:
    text = (Path(__file__).parents[4] / "services/orchestrator/areas/projections.toml").read_text(
        encoding="utf-8"
    )
    path = tmp_path / "mine.toml"
    old, new = 'target = "limbic"\nweight = 1.2', 'target = "limbic"\nweight = 0.9'
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    g = _graph(projections_file=str(path))
    assert g.weight[g.edge_names.index("vta->limbic")].sum() == 0.9
    assert g.signature() != _graph().signature() and _graph().signature() == _graph().signature()
    with pytest.raises(ConfigError, match="cannot read projections file"):
        _graph(projections_file=str(tmp_path / "absent.toml"))
    (tmp_path / "bad.toml").write_text("[[nucleus]]\nname = 'x'\nnt = ['XYZ']\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"bad.toml: Invalid enum value 'XYZ' - at `\$.nucleus\[0\].nt\[0\]`"
    ):
        _graph(projections_file=str(tmp_path / "bad.toml"))
