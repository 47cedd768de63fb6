"""The signal-socket protocol: every message, its constraints, and both framings.

Owned here because it crosses a process boundary: the orchestrator's server
(:mod:`engs.services.orchestrator.server`) decodes requests and encodes replies, the clients
(:mod:`engs.shared.client`, ``engs send``) do the reverse. Protocol description, ranges and
examples: ``docs/signals.md``.

Requests are a msgspec tagged union on ``"type"`` (:data:`Request`); each member
forbids unknown fields and carries its constraints, so one :class:`msgspec.json.Decoder`
or :class:`msgspec.msgpack.Decoder` built once (:data:`REQUEST_JSON`,
:data:`REQUEST_MSGPACK`) rejects a bad request with a message naming the field path
(``Expected `float` <= 1.0 - at `$.value```). Every float has both a lower and an
upper bound: msgspec's bound checks are false for NaN, and ±Infinity fails one of two
finite bounds, so a non-finite value can never pass (JSON cannot even spell NaN or
Infinity, and ``1e400`` fails as "Number out of range"). Tests check this for both
framings.

Replies (:data:`Reply`) are decoded by clients leniently (unknown fields ignored) so
that the server may add reply fields without breaking old clients.

Framing, chosen by the first byte a client sends on a connection:

* ``{`` → JSON lines: one object per line (``\\n``, an optional ``\\r`` before it is
  ignored), one reply line per request;
* anything else → a 4-byte big-endian unsigned length, then that many bytes of msgpack;
  replies are framed the same way.

A frame (or a line, without its newline) is at most :data:`MAX_FRAME` bytes.
"""

from __future__ import annotations

import struct
from typing import Annotated, Literal, TypeAlias

import msgspec
import msgspec.inspect
from msgspec import Meta, Struct

#: Largest frame payload or JSON line (without its newline), in bytes.
MAX_FRAME = 64 * 1024
#: The msgpack length prefix: 4 bytes, big-endian, unsigned.
HEADER = struct.Struct(">I")
HEADER_BYTES = HEADER.size
_unpack_header = HEADER.unpack_from
_CR = 0x0D
#: Largest id, lock id and sequence number (they fit an i64).
MAX_ID = (1 << 63) - 1

Framing: TypeAlias = Literal["json", "msgpack"]

# ---------------------------------------------------------------------------
# Field types

Id: TypeAlias = Annotated[int, Meta(ge=0, le=MAX_ID)] | Annotated[str, Meta(max_length=64)] | None
"""Optional request id, echoed in the reply: an integer in [0, 2^63) or a string of
at most 64 characters."""

Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
"""A normalised level in [0, 1] (finite)."""
Signed = Annotated[float, Meta(ge=-1.0, le=1.0)]
"""A signed normalised value in [-1, 1] (finite)."""
Amplitude = Annotated[float, Meta(ge=0.0, le=10.0)]
"""A stimulus amplitude in field units, [0, 10]."""
Cost = Annotated[float, Meta(gt=0.0, le=1e6)]
"""A metabolic cost in NMU (ATP units), (0, 10^6]."""
Hz = Annotated[float, Meta(gt=0.0, le=100.0)]
"""A subscription rate in Hz, (0, 100]: the control cycle's rate bounds what is new."""
LockId = Annotated[int, Meta(ge=1, le=MAX_ID)]
NAME_PATTERN = r"[a-z][a-z0-9_]{0,31}"
"""An area's (or a receptor site's) name: lowercase, at most 32 characters."""
AreaName = Annotated[str, Meta(pattern=f"^{NAME_PATTERN}$")]
"""An area's name, here and in the configuration (``$.physics.areas``)."""
TaskName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")]
NodeId = Annotated[str, Meta(min_length=1, max_length=64)]
Token = Annotated[str, Meta(min_length=1, max_length=256)]

CauseName: TypeAlias = Literal[
    "scram", "atp_exhausted", "panic", "unstable", "cognitive_pause", "manual"
]
"""``engs.shared.layout.Cause`` member names, lowercase (a test keeps them equal)."""

RejectReason: TypeAlias = Literal[
    "decode",
    "invalid",
    "too_large",
    "rate_limited",
    "unauthorized",
    "overloaded",
    "metabolic_denied",
    "unknown_lock",
]
"""Why a request was refused: the ``error`` reply's ``reason``; the stats schema's
``engs.shared.stats_schema.REJECT_REASONS`` is derived from it."""


# ---------------------------------------------------------------------------
# Requests


class _Request(
    Struct,
    tag_field="type",
    forbid_unknown_fields=True,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    gc=False,
):
    id: Id = None


class Reward(_Request, tag="reward", frozen=True):
    """An external reward R_t (seed 003 §3.1): positive reinforces, negative punishes.
    Applied once; the dynamics sums the rewards of one cycle."""

    value: Signed


class Stress(_Request, tag="stress", frozen=True):
    """An external stressor of intensity ``value`` in [0, 1] (drives norepinephrine and
    cortisol, seed 003 §5)."""

    value: Unit


class Novelty(_Request, tag="novelty", frozen=True):
    """Novelty of new input: its normalised Shannon entropy in [0, 1] (seed 003
    GAP-036 ``register_novelty``: > 0.5 resets boredom, less buys time)."""

    entropy: Unit


class Stimulus(_Request, tag="stimulus", frozen=True):
    """A one-shot stimulus of ``amplitude`` (field units) into the named area."""

    area: AreaName
    amplitude: Amplitude


class Dmn(_Request, tag="dmn", frozen=True):
    """Cognitive (DMN) metrics of one thought step (seed 000): the orchestrator takes
    the differences between successive reports (ΔC, ΔU, ΔH, ΔCal) itself."""

    coherence: Unit
    utility: Signed
    uncertainty: Unit
    safety_penalty: Unit
    calibration_gap: Unit
    node: NodeId | None = None
    """The CFG node the metrics were computed at (a label)."""


class GoalComplete(_Request, tag="goal_complete", frozen=True):
    """A goal was completed (serotonin +0.05, seed 003 §4.3)."""


class SecurityAlert(_Request, tag="security_alert", frozen=True):
    """A security alert (serotonin −0.5, seed 003 §4.3)."""


class Reserve(_Request, tag="reserve", frozen=True):
    """Ask for a metabolic lock of ``cost`` NMU for ``task`` (seed 003 §7.2): granted
    (the ack carries ``lock``) or denied (error ``metabolic_denied``)."""

    cost: Cost
    task: TaskName


class Commit(_Request, tag="commit", frozen=True):
    """Confirm the expenditure of an open lock."""

    lock: LockId


class Abort(_Request, tag="abort", frozen=True):
    """Cancel an open lock; its escrow is refunded."""

    lock: LockId


class State(_Request, tag="state", frozen=True):
    """Ask for one snapshot of the current state (the ack carries ``state``)."""


class Subscribe(_Request, tag="subscribe", frozen=True):
    """Stream ``snapshot`` messages at up to ``hz`` (and events as they happen) on this
    connection until the client leaves; a second subscribe changes the rate."""

    hz: Hz


class Interrupt(_Request, tag="interrupt", frozen=True):
    """Raise a CRITICAL interrupt cause. Privileged: needs an authenticated connection."""

    cause: CauseName


class Clear(_Request, tag="clear", frozen=True):
    """Clear a CRITICAL interrupt cause. Privileged: needs an authenticated connection."""

    cause: CauseName


class Auth(_Request, tag="auth", frozen=True):
    """Authenticate this connection with the server's token (``ENGS_TOKEN``)."""

    token: Token


#: Signals handed to the dynamics through the inbox (fire and forget, applied once).
Signal: TypeAlias = Reward | Stress | Novelty | Stimulus | Dmn | GoalComplete | SecurityAlert
#: Every request a client may send.
Request: TypeAlias = (
    Reward
    | Stress
    | Novelty
    | Stimulus
    | Dmn
    | GoalComplete
    | SecurityAlert
    | Reserve
    | Commit
    | Abort
    | State
    | Subscribe
    | Interrupt
    | Clear
    | Auth
)
SIGNAL_CLASSES: tuple[type[_Request], ...] = (
    Reward, Stress, Novelty, Stimulus, Dmn, GoalComplete, SecurityAlert,
)  # fmt: skip
REQUEST_CLASSES: tuple[type[_Request], ...] = (
    *SIGNAL_CLASSES, Reserve, Commit, Abort, State, Subscribe, Interrupt, Clear, Auth,
)  # fmt: skip
#: The wire tag of each request class.
TAG: dict[type[_Request], str] = {cls: str(cls.__struct_config__.tag) for cls in REQUEST_CLASSES}


# ---------------------------------------------------------------------------
# The bounds, for callers that bypass the decoder


def field_bounds(cls: type[Struct], name: str) -> tuple[float, float]:
    """The closed range [lo, hi] a request's float field accepts, read from its
    annotation: the one place each input's bound is written. The library API
    (:class:`engs.services.orchestrator.inputs.InputAccumulator`) checks direct calls with
    it, so the socket and a program calling the dynamics directly accept the same
    values. Raises TypeError for a field that is not a bounded float."""
    info = msgspec.inspect.type_info(cls)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"{cls!r} is not a msgspec Struct")
    for f in info.fields:
        if f.name == name:
            t = f.type
            if isinstance(t, msgspec.inspect.FloatType) and t.ge is not None and t.le is not None:
                return float(t.ge), float(t.le)
            break
    raise TypeError(f"{cls.__name__}.{name} is not a float with a closed range")


def check_field(cls: type[Struct], name: str, value: float) -> float:
    """``value`` as a float if it is finite and within ``cls.name``'s bounds, else
    ValueError naming the field the way the socket's errors do
    (``Expected `float` in [-1.0, 1.0], got 2.0 - at `reward.value```)."""
    lo, hi = field_bounds(cls, name)
    v = float(value)
    if not lo <= v <= hi:  # False for NaN; ±inf fails one of two finite bounds
        tag = cls.__struct_config__.tag
        raise ValueError(f"Expected `float` in [{lo}, {hi}], got {value!r} - at `{tag}.{name}`")
    return v


# ---------------------------------------------------------------------------
# Replies


class _Reply(Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True):
    pass


class StateSnapshot(Struct, frozen=True, kw_only=True):
    """What the orchestrator reports of its state (``state`` and ``subscribe``).

    Levels are those of the NeurochemicalState it last published (``seq``, computed at
    ``t_calc_ns``, CLOCK_MONOTONIC), including every signal up to ``signal_id``.
    """

    seq: int
    t_calc_ns: int
    signal_id: int
    dopamine: float
    serotonin: float
    norepinephrine: float
    atp_ratio: float
    atp_reserve: float
    cortisol: float
    boredom: float
    reward_rate: float = 0.0
    """R̄, the average reward per second: tonic dopamine (Niv et al. 2007)."""
    phasic_dopamine: float = 0.0
    """The phasic response: δ, negative errors compressed (Bayer & Glimcher 2005)."""
    td_error: float = 0.0
    """δ, the critic's bounded TD error (the learning signal)."""
    plasticity_gate: float = 1.0
    """η/η₀ = 1 + tanh(κ_D (D - D_eq)), in (0, 2): the learning-rate gate (gates.py)."""
    elasticity_gate: float = 0.5
    """λ/λ₀ = 0.5 + 0.5·tanh(κ_S (S - S_eq)), in (0, 1): the restoring-force gate."""
    relevance_gate: float = 0.5
    """τ(N) = clamp(base - slope·N, floor, ceiling): the admission threshold."""
    speed_gain: float = 1.0
    """v/v₀ = 1 + N², in [1, 2]: the wave-speed gain."""
    mode: list[str] = msgspec.field(default_factory=list)
    """``engs.shared.layout.Mode`` names set, lowercase."""
    interrupts: list[str] = msgspec.field(default_factory=list)
    """``engs.shared.layout.Cause`` names set, lowercase."""
    open_locks: int = 0


class Ack(_Reply, tag="ack", frozen=True):
    """A request was accepted; ``seq`` is its sequence number, strictly increasing per
    server (for inbox signals, the signal id carried into NeurochemicalState)."""

    id: Id
    seq: int
    lock: int | None = None
    """``reserve``: the granted lock."""
    state: StateSnapshot | None = None
    """``state``: the snapshot."""


class Error(_Reply, tag="error", frozen=True):
    """A request was refused: nothing of it reached the dynamics."""

    id: Id
    reason: RejectReason
    error: str


class Snapshot(_Reply, tag="snapshot", frozen=True):
    """One streamed state (``subscribe``): ``n`` counts the snapshots of this
    subscription, ``dropped`` those discarded because the client read too slowly."""

    id: Id
    n: int
    dropped: int
    state: StateSnapshot


class CuriosityGoal(_Reply, tag="curiosity_goal", frozen=True):
    """Event: boredom crossed the threshold and a curiosity goal went out for ``area``
    (the frontier, seed 003 GAP-036), at ``t_ns`` (CLOCK_MONOTONIC)."""

    area: str
    boredom: float
    t_ns: int


#: Events the orchestrator pushes to subscribers (``SignalServer.publish``).
Event: TypeAlias = CuriosityGoal
#: Every message a server sends.
Reply: TypeAlias = Ack | Error | Snapshot | CuriosityGoal


# ---------------------------------------------------------------------------
# Codecs, built once

REQUEST_JSON = msgspec.json.Decoder(Request)
REQUEST_MSGPACK = msgspec.msgpack.Decoder(Request)
REPLY_JSON = msgspec.json.Decoder(Reply)
REPLY_MSGPACK = msgspec.msgpack.Decoder(Reply)
JSON_ENCODER = msgspec.json.Encoder()
MSGPACK_ENCODER = msgspec.msgpack.Encoder()


class _IdProbe(Struct):
    id: Id = None


_PROBE_JSON = msgspec.json.Decoder(_IdProbe)
_PROBE_MSGPACK = msgspec.msgpack.Decoder(_IdProbe)


def probe_id(payload: bytes | memoryview, framing: Framing) -> int | str | None:
    """The ``id`` of a request that failed to decode, if it can still be read."""
    dec = _PROBE_JSON if framing == "json" else _PROBE_MSGPACK
    try:
        return dec.decode(payload).id
    except (msgspec.DecodeError, RecursionError):
        return None


def encode_frame(msg: Struct, framing: Framing) -> bytes:
    """One message, framed: a JSON line, or a length prefix and msgpack."""
    if framing == "json":
        return JSON_ENCODER.encode(msg) + b"\n"
    body = MSGPACK_ENCODER.encode(msg)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def append_frame(msg: Struct, framing: Framing, out: bytearray) -> None:
    """Append one framed message to ``out`` (no intermediate copy of the body)."""
    if framing == "json":
        JSON_ENCODER.encode_into(msg, out, -1)
        out += b"\n"
        return
    start = len(out)
    out += b"\0\0\0\0"
    MSGPACK_ENCODER.encode_into(msg, out, -1)
    HEADER.pack_into(out, start, len(out) - start - HEADER_BYTES)


class FrameTooLarge(ValueError):
    """A frame announced or grew beyond the limit; the stream cannot be resynchronised."""


class FrameSplitter:
    """Cuts a byte stream into frame payloads: the one framer, of the signal server and
    of the clients alike (sans-IO: it never reads or writes a socket).

    ``feed(data)``, then ``next()`` until it returns None. Payloads are memoryviews
    into an immutable buffer: valid after later feeds, decode them where they lie.

    * JSON lines: a payload ends at ``\n``; one ``\r`` just before it ends the line
      too (``\r\n`` from line-oriented tools) and is not part of the payload or of
      its length. A blank line gives an empty payload (not a request: the server skips
      it). More than ``max_frame`` bytes in one line raises :class:`FrameTooLarge`, as
      soon as more than ``max_frame + 1`` bytes wait without a newline.
    * msgpack: a 4-byte big-endian length, then the body. A length above ``max_frame``
      raises :class:`FrameTooLarge` before anything of the body is buffered.

    :meth:`end` (the peer closed its side) lets a last JSON line without its final
    newline count. After :class:`FrameTooLarge` the stream cannot be resynchronised.
    """

    __slots__ = ("_buf", "_json", "_pos", "_view", "framing", "max_frame")

    def __init__(self, framing: Framing, max_frame: int = 1 << 24) -> None:
        self.framing = framing
        self.max_frame = max_frame
        self._json = framing == "json"
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf = self._buf[self._pos :] + data if self._pos < len(self._buf) else data
        self._view = memoryview(self._buf)
        self._pos = 0

    def end(self) -> None:
        """The stream ended: an unterminated JSON line is a line."""
        if self._json and self._pos < len(self._buf):
            self.feed(b"\n")

    def next(self) -> memoryview | None:
        """The next complete payload, or None until more bytes are fed."""
        buf, pos, limit = self._buf, self._pos, self.max_frame
        if self._json:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if len(buf) - pos > limit + 1:  # + 1: a "\r" may end a full line
                    raise FrameTooLarge(f"line longer than {limit} bytes")
                return None
            stop = nl - 1 if nl > pos and buf[nl - 1] == _CR else nl
            if stop - pos > limit:
                raise FrameTooLarge(f"line of {stop - pos} bytes exceeds {limit}")
            self._pos = nl + 1
            return self._view[pos:stop]
        if len(buf) - pos < HEADER_BYTES:
            return None
        (size,) = _unpack_header(buf, pos)
        if size > limit:  # announced, not received: nothing of it is buffered
            raise FrameTooLarge(f"frame of {size} bytes exceeds {limit}")
        end = pos + HEADER_BYTES + size
        if len(buf) < end:
            return None
        self._pos = end
        return self._view[pos + HEADER_BYTES : end]

    def pending(self) -> bool:
        """Whether :meth:`next` would return a payload or raise (not None)."""
        buf, pos = self._buf, self._pos
        if self._json:
            return buf.find(b"\n", pos) >= 0 or len(buf) - pos > self.max_frame + 1
        if len(buf) - pos < HEADER_BYTES:
            return False
        (size,) = _unpack_header(buf, pos)
        return size > self.max_frame or len(buf) - pos - HEADER_BYTES >= size


def decode_reply(payload: bytes | memoryview, framing: Framing) -> Reply:
    """Decode one reply payload (raises msgspec.DecodeError / ValidationError)."""
    dec = REPLY_JSON if framing == "json" else REPLY_MSGPACK
    return dec.decode(payload)
