"""The signal protocol's types: every message round-trips in both framings, every
constraint rejects with msgspec's exact message naming the field path, non-finite
floats never pass, and the names stay equal to the stats schema's labels."""

from __future__ import annotations

import itertools
import math
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engs.shared.layout import Cause
from engs.shared.messages import (
    MAX_FRAME,
    REQUEST_CLASSES,
    REQUEST_JSON,
    REQUEST_MSGPACK,
    SIGNAL_CLASSES,
    TAG,
    Abort,
    Ack,
    Auth,
    CauseName,
    Clear,
    Commit,
    CuriosityGoal,
    Dmn,
    Error,
    FrameSplitter,
    FrameTooLarge,
    GoalComplete,
    Interrupt,
    Novelty,
    RejectReason,
    Reserve,
    Reward,
    SecurityAlert,
    Snapshot,
    State,
    StateSnapshot,
    Stimulus,
    Stress,
    Subscribe,
    append_frame,
    decode_reply,
    encode_frame,
    probe_id,
)
from engs.shared.stats_schema import REJECT_REASONS, SIGNAL_TYPES

#: One valid instance of every request type.
EXAMPLES: list[Any] = [
    Reward(value=0.7, id=1),
    Stress(value=0.3, id="s-1"),
    Novelty(entropy=0.9),
    Stimulus(area="sensory", amplitude=2.5),
    Dmn(
        coherence=0.4,
        utility=-0.2,
        uncertainty=0.3,
        safety_penalty=0.0,
        calibration_gap=0.1,
        node="cfg/7",
    ),
    GoalComplete(),
    SecurityAlert(id=9),
    Reserve(cost=5.0, task="ingest"),
    Commit(lock=7),
    Abort(lock=8),
    State(),
    Subscribe(hz=10.0),
    Interrupt(cause="manual"),
    Clear(cause="panic"),
    Auth(token="secret-token-0123"),
]


def test_names_match_the_stats_schema() -> None:
    tags = [TAG[cls] for cls in REQUEST_CLASSES]
    assert [t for t in tags if t != "auth"] == list(SIGNAL_TYPES)
    assert list(typing.get_args(RejectReason)) == list(REJECT_REASONS)
    assert list(typing.get_args(CauseName)) == [c.name.lower() for c in Cause if c.name]
    assert {type(m) for m in EXAMPLES} == set(REQUEST_CLASSES)
    assert set(SIGNAL_CLASSES) < set(REQUEST_CLASSES)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: TAG[type(m)])
def test_every_request_round_trips_in_both_framings(msg: Any) -> None:
    line = msgspec.json.encode(msg)
    assert line.startswith(b'{"type":"' + TAG[type(msg)].encode() + b'"')
    assert REQUEST_JSON.decode(line) == msg
    assert REQUEST_MSGPACK.decode(msgspec.msgpack.encode(msg)) == msg


def test_replies_round_trip_and_tolerate_new_fields() -> None:
    state = StateSnapshot(
        seq=3,
        t_calc_ns=10,
        signal_id=2,
        dopamine=0.5,
        serotonin=0.4,
        norepinephrine=0.1,
        atp_ratio=0.9,
        atp_reserve=90.0,
        cortisol=0.0,
        boredom=0.2,
        mode=["curiosity"],
        interrupts=["manual"],
        open_locks=1,
    )
    replies = [
        Ack(id=1, seq=5),
        Ack(id=None, seq=6, lock=3),
        Ack(id="x", seq=7, state=state),
        Error(id=2, reason="invalid", error="Expected `float`, got `str` - at `$.value`"),
        Snapshot(id=None, n=1, dropped=0, state=state),
        CuriosityGoal(area="motor", boredom=0.86, t_ns=123),
    ]
    for r in replies:
        for framing in ("json", "msgpack"):
            frame = encode_frame(r, framing)
            payload = frame[:-1] if framing == "json" else frame[4:]
            assert decode_reply(payload, framing) == r
    # The ack always carries its id (null when absent); optional fields only when set.
    assert msgspec.json.encode(Ack(id=None, seq=6)) == b'{"type":"ack","id":null,"seq":6}'
    # A newer server may add fields: clients ignore them.
    newer = b'{"type":"ack","id":1,"seq":2,"latency_ns":5}'
    assert decode_reply(newer, "json") == Ack(id=1, seq=2)


# Exact messages: (JSON line, msgspec's message naming the field).
INVALID = [
    (b'{"type":"reward","value":"high"}', "Expected `float`, got `str` - at `$.value`"),
    (b'{"type":"reward"}', "Object missing required field `value`"),
    (b'{"type":"reward","value":0.5,"extra":1}', "Object contains unknown field `extra`"),
    (b'{"type":"reward","value":1.5}', "Expected `float` <= 1.0 - at `$.value`"),
    (b'{"type":"reward","value":-1.01}', "Expected `float` >= -1.0 - at `$.value`"),
    (b'{"type":"stress","value":-0.1}', "Expected `float` >= 0.0 - at `$.value`"),
    (b'{"type":"novelty","entropy":1.2}', "Expected `float` <= 1.0 - at `$.entropy`"),
    (b'{"type":"explode"}', "Invalid value 'explode' - at `$.type`"),
    (b'{"value":0.5}', "Object missing required field `type`"),
    (b"[1,2]", "Expected `object`, got `array`"),
    (b'{"type":"reward","value":1e400}', "Number out of range - at `$.value`"),
    (b'{"type":"reward","value":true}', "Expected `float`, got `bool` - at `$.value`"),
    (
        b'{"type":"stimulus","area":"Visual Cortex","amplitude":1}',
        "Expected `str` matching regex '^[a-z][a-z0-9_]{0,31}$' - at `$.area`",
    ),
    (
        b'{"type":"stimulus","area":"motor","amplitude":11}',
        "Expected `float` <= 10.0 - at `$.amplitude`",
    ),
    (b'{"type":"reserve","cost":0,"task":"x"}', "Expected `float` > 0.0 - at `$.cost`"),
    (b'{"type":"reserve","cost":1e7,"task":"x"}', "Expected `float` <= 1000000.0 - at `$.cost`"),
    (
        b'{"type":"reserve","cost":1,"task":""}',
        "Expected `str` matching regex '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$' - at `$.task`",
    ),
    (b'{"type":"commit","lock":0}', "Expected `int` >= 1 - at `$.lock`"),
    (b'{"type":"abort","lock":"7"}', "Expected `int`, got `str` - at `$.lock`"),
    (b'{"type":"subscribe","hz":0}', "Expected `float` > 0.0 - at `$.hz`"),
    (b'{"type":"subscribe","hz":1000}', "Expected `float` <= 100.0 - at `$.hz`"),
    (
        b'{"type":"interrupt","cause":"SCRAM"}',
        "Invalid enum value 'SCRAM' - at `$.cause`",
    ),
    (
        b'{"type":"dmn","coherence":0.1,"utility":0,"uncertainty":0,"safety_penalty":2,'
        b'"calibration_gap":0}',
        "Expected `float` <= 1.0 - at `$.safety_penalty`",
    ),
    (b'{"type":"goal_complete","value":1}', "Object contains unknown field `value`"),
    (b'{"type":"state","id":1.5}', "Expected `int | str | null`, got `float` - at `$.id`"),
    (b'{"type":"state","id":-1}', "Expected `int` >= 0 - at `$.id`"),
    (b'{"type":"state","id":"' + b"x" * 65 + b'"}', "Expected `str` of length <= 64 - at `$.id`"),
]


@pytest.mark.parametrize(("line", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_requests_fail_with_the_exact_message(line: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        REQUEST_JSON.decode(line)
    assert str(info.value) == message
    # The same document in msgpack fails the same way (1e400 has no msgpack spelling).
    if b"1e400" not in line:
        doc = msgspec.json.decode(line)
        with pytest.raises(msgspec.ValidationError) as info2:
            REQUEST_MSGPACK.decode(msgspec.msgpack.encode(doc))
        assert str(info2.value) == message


def _float_fields() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, float field, a valid document) for every float field of every request."""
    out = []
    for msg in EXAMPLES:
        doc = msgspec.to_builtins(msg)
        for name, value in doc.items():
            if isinstance(value, float):
                out.append((TAG[type(msg)], name, doc))
    return out


@pytest.mark.parametrize(("tag", "field", "doc"), _float_fields(), ids=str)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_floats_never_pass(
    tag: str, field: str, doc: dict[str, Any], bad: float
) -> None:
    """msgpack can carry NaN and ±Infinity: every float field refuses them."""
    payload = msgspec.msgpack.encode({**doc, field: bad})
    with pytest.raises(msgspec.ValidationError) as info:
        REQUEST_MSGPACK.decode(payload)
    assert str(info.value).endswith(f" - at `$.{field}`")
    assert str(info.value).startswith("Expected `float` ")


def test_json_cannot_spell_nan_or_infinity() -> None:
    for word in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(msgspec.DecodeError) as info:
            REQUEST_JSON.decode(b'{"type":"reward","value":' + word + b"}")
        assert str(info.value).startswith("JSON is malformed: invalid character (byte ")


def test_probe_id_reads_the_id_of_a_bad_request_when_it_can() -> None:
    assert probe_id(b'{"type":"reward","value":"x","id":42}', "json") == 42
    assert probe_id(b'{"type":"reward","value":"x","id":[1]}', "json") is None
    assert probe_id(b'{"type":"reward",', "json") is None
    assert probe_id(b"[" * 50_000, "json") is None
    assert probe_id(msgspec.msgpack.encode({"id": "a", "type": 3}), "msgpack") == "a"


def test_append_frame_matches_encode_frame() -> None:
    for framing in ("json", "msgpack"):
        out = bytearray(b"prefix")
        for msg in EXAMPLES:
            append_frame(msg, framing, out)
        assert bytes(out) == b"prefix" + b"".join(encode_frame(m, framing) for m in EXAMPLES)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_frame_splitter_handles_any_chunking(cuts: list[int]) -> None:
    for framing in ("json", "msgpack"):
        stream = b"".join(encode_frame(m, framing) for m in EXAMPLES)
        points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
        split = FrameSplitter(framing)
        got = []
        for a, b in itertools.pairwise(points):
            split.feed(stream[a:b])
            while (frame := split.next()) is not None:
                got.append(frame)
        dec = REQUEST_JSON if framing == "json" else REQUEST_MSGPACK
        assert [dec.decode(f) for f in got] == EXAMPLES


def test_frame_splitter_refuses_oversized_frames_before_buffering_them() -> None:
    split = FrameSplitter("msgpack", max_frame=MAX_FRAME)
    split.feed((1 << 31).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge, match="frame of 2147483648 bytes exceeds 65536"):
        split.next()
    lines = FrameSplitter("json", max_frame=100)
    lines.feed(b"{" + b"x" * 200)
    with pytest.raises(FrameTooLarge, match="line longer than 100 bytes"):
        lines.next()


def test_one_carriage_return_rule_for_server_and_clients() -> None:
    """A ``\r`` before the ``\n`` ends a JSON line and does not count towards its
    length; a blank line is an empty payload; an unterminated last line counts at end."""
    split = FrameSplitter("json", max_frame=4)
    split.feed(b"abcd\r\n\r\n\nxy")
    assert [bytes(f) for f in iter(split.next, None)] == [b"abcd", b"", b""]
    assert not split.pending()
    split.end()
    assert split.pending() and bytes(split.next() or b"-") == b"xy"
    split.feed(b"abcde\r\n")
    with pytest.raises(FrameTooLarge, match=r"^line of 5 bytes exceeds 4$"):
        split.next()
