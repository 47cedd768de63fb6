"""`engs send --instance X` dials where instance X says it listens: real region, real
socket, real subprocess."""

from __future__ import annotations

import json
import socket
import threading

import msgspec

from engs.shared.endpoints import publish_signals
from engs.shared.messages import HEADER_BYTES, Ack, encode_frame
from engs.shared.region import Region
from tests.services.cli.support import engs


def _one_request_server(srv: socket.socket, got: list[dict[str, object]]) -> None:
    """Accept one msgpack-framed connection (what ``engs send`` speaks), answer its one
    request with an ack of seq 7."""
    conn, _ = srv.accept()
    with conn, conn.makefile("rwb") as f:
        body = f.read(int.from_bytes(f.read(HEADER_BYTES), "big"))
        req = msgspec.msgpack.decode(body)
        got.append(req)
        f.write(encode_frame(Ack(id=req.get("id"), seq=7), "msgpack"))
        f.flush()


def test_send_dials_the_published_address_not_the_configured_one(region: Region) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        publish_signals(region, f"127.0.0.1:{port}")
        got: list[dict[str, object]] = []
        t = threading.Thread(target=_one_request_server, args=(srv, got), daemon=True)
        t.start()
        # ENGS_SIGNAL_ADDR points elsewhere: the published address wins.
        res = engs(
            "--instance",
            region.instance,
            "send",
            "reward",
            "0.5",
            "--json",
            env={"ENGS_SIGNAL_ADDR": "127.0.0.1:9"},
        )
        t.join(10)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["seq"] == 7
    assert got == [{"type": "reward", "value": 0.5}]


def test_a_dead_instance_names_where_the_address_came_from(region: Region) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    publish_signals(region, f"127.0.0.1:{port}")
    res = engs("send", "reward", "0.5", "--instance", region.instance, "--timeout", "1")
    assert res.returncode == 1
    assert f"127.0.0.1:{port}" in res.stderr
    assert res.stderr.rstrip().endswith(f"(the address instance '{region.instance}' published)")


def test_a_wildcard_bind_needs_the_token_though_dialled_on_loopback(region: Region) -> None:
    publish_signals(region, "0.0.0.0:47999")
    res = engs("send", "reward", "0.5", "--instance", region.instance)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "engs send: 0.0.0.0:47999 is not loopback: set ENGS_TOKEN to the server's token"
    )


def test_no_region_falls_back_to_the_configured_address(instance: str) -> None:
    res = engs(
        "send",
        "reward",
        "0.5",
        "--instance",
        instance,
        "--timeout",
        "1",
        env={"ENGS_SIGNAL_ADDR": "127.0.0.1:9"},
    )
    assert res.returncode == 1
    assert "127.0.0.1:9" in res.stderr
    assert f"from $.signals.addr: no running instance '{instance}' on this machine" in res.stderr
