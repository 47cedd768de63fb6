"""How one cycle's signals combine (inputs.py), from direct calls and from the socket's
message types."""

from __future__ import annotations

import math

import msgspec
import pytest

from engs.services.orchestrator.inputs import (
    CycleInputs,
    DmnReport,
    InputAccumulator,
    OracleRequest,
    Stimulus,
    dmn_metrics,
)
from engs.shared import messages

AREAS = ("sensory", "motor", "association", "limbic")


def test_combination_rules_and_reset() -> None:
    acc = InputAccumulator(AREAS)
    acc.add_reward(0.5)
    acc.add_reward(-0.25)
    acc.set_stress(0.9)
    acc.set_stress(0.2)
    acc.add_novelty(0.3)
    acc.add_novelty(0.7)
    acc.add_stimulus("limbic", 1.0)
    acc.add_stimulus(3, 0.5)
    acc.add_stimulus("sensory", 2.0)
    acc.add_goal_complete()
    acc.add_goal_complete()
    acc.add_security_alert()
    acc.request_oracle("mania", 4)
    acc.set_temperature(71.5)
    acc.set_external_causes(1)
    got = acc.take()
    assert got == CycleInputs(
        reward=0.25,  # summed
        stress=0.2,  # latest wins
        novelty=(0.3, 0.7),  # in arrival order
        stimuli=(Stimulus(0, 2.0), Stimulus(3, 1.5)),  # summed per area
        goal_complete=2,
        security_alert=1,
        oracle=(OracleRequest(kind="mania", id=4),),
        temperature_c=71.5,
        external_causes=1,
    )
    assert acc.take() == CycleInputs()  # empty afterwards
    # Recordable for a replay tool.
    assert msgspec.json.decode(msgspec.json.encode(got), type=CycleInputs) == got


def test_socket_signals_fold_in() -> None:
    acc = InputAccumulator(AREAS)
    for sig in (
        messages.Reward(value=0.5),
        messages.Reward(value=0.25),
        messages.Stress(value=0.4),
        messages.Novelty(entropy=0.6),
        messages.Stimulus(area="motor", amplitude=3.0),
        messages.Dmn(
            coherence=0.7, utility=0.1, uncertainty=0.4, safety_penalty=0.05, calibration_gap=0.2
        ),
        messages.GoalComplete(),
        messages.SecurityAlert(),
    ):
        acc.add_signal(sig)
    got = acc.take()
    assert (got.reward, got.stress, got.novelty) == (0.75, 0.4, (0.6,))
    assert got.stimuli == (Stimulus(1, 3.0),)
    assert got.dmn == DmnReport(0.7, 0.1, 0.4, 0.05, 0.2)
    assert (got.goal_complete, got.security_alert) == (1, 1)


def test_bad_values_never_reach_the_dynamics() -> None:
    acc = InputAccumulator(AREAS)
    with pytest.raises(
        ValueError, match=r"^Expected `float` in \[0\.0, 1\.0\], got 1\.5 - at `stress\.value`$"
    ):
        acc.set_stress(1.5)
    with pytest.raises(ValueError, match=r"got nan - at `reward\.value`$"):
        acc.add_reward(float("nan"))
    with pytest.raises(ValueError, match=r"in \[0\.0, 10\.0\], got -1\.0 - at `stimulus\.amp"):
        acc.add_stimulus("motor", -1.0)
    with pytest.raises(ValueError, match=r"at `dmn\.utility`$"):
        acc.set_dmn(DmnReport(0.5, 2.0, 0.5, 0.0, 0.0))
    expected = "association, limbic, motor, sensory - at `stimulus\\.area`$"
    with pytest.raises(ValueError, match=rf"^unknown area 'cortex', expected one of: {expected}"):
        acc.add_stimulus("cortex", 1.0)
    with pytest.raises(ValueError, match=r"`stimulus.area` must be in 0..3, got 4"):
        acc.add_stimulus(4, 1.0)
    assert acc.take() == CycleInputs()


@pytest.mark.parametrize(
    ("cls", "field", "method"),
    [
        (messages.Reward, "value", "add_reward"),
        (messages.Stress, "value", "set_stress"),
        (messages.Novelty, "entropy", "add_novelty"),
    ],
)
def test_the_library_api_accepts_exactly_what_the_socket_accepts(
    cls: type, field: str, method: str
) -> None:
    """One bound per input, written on the message field (issue #12): the accumulator
    accepts both ends of the decoder's range and refuses just past them, and the
    decoder agrees on every value tried."""
    lo, hi = messages.field_bounds(cls, field)
    acc = InputAccumulator(AREAS)
    dec = msgspec.json.Decoder(cls)
    for v in (lo, hi, lo - 1e-9, hi + 1e-9, 1e6, -1e6, math.inf):
        try:
            getattr(acc, method)(v)
            library_ok = True
        except ValueError:
            library_ok = False
        try:
            dec.decode(msgspec.json.encode({"type": cls.__struct_config__.tag, field: v}))
            socket_ok = True
        except msgspec.ValidationError:
            socket_ok = False
        assert library_ok == socket_ok == (lo <= v <= hi), v


def test_dmn_outcome_metrics_difference_successive_reports() -> None:
    first = DmnReport(0.5, 0.2, 0.6, 0.1, 0.3)
    assert dmn_metrics(None, first) == (0.0, 0.0, 0.0, 0.9, 0.0)
    second = DmnReport(0.75, 0.125, 0.5, 0.0, 0.25)
    # ΔC = C - C', ΔU = U - U', ΔH = H' - H, S = 1 - penalty, ΔCal = gap' - gap.
    assert dmn_metrics(first, second) == pytest.approx((0.25, -0.075, 0.1, 1.0, 0.05))
