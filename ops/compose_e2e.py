"""Probes of ops/compose-e2e.sh, standard library only (runs on the host's python3).

    python3 ops/compose_e2e.py signal HOST:PORT            # auth (ENGS_TOKEN) + one reward
    python3 ops/compose_e2e.py metric NAME [LABEL=VALUE]   # sum of a sample, /metrics on stdin
    python3 ops/compose_e2e.py query URL PROMQL            # Prometheus HTTP API: sample count

Each prints one line and exits 0 on success, 1 (with the reason on stderr) otherwise.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import urllib.parse
import urllib.request


def signal(addr: str) -> int:
    """Authenticate with ENGS_TOKEN, send a reward, print the reward's ack."""
    host, _, port = addr.rpartition(":")
    token = os.environ["ENGS_TOKEN"]
    lines = [
        {"type": "auth", "token": token, "id": "auth"},
        {"type": "reward", "value": 0.7, "id": "e2e-reward"},
    ]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
        replies = s.makefile("rb")
        for sent in lines:
            reply = json.loads(replies.readline() or b"null")
            if not isinstance(reply, dict) or reply.get("type") != "ack":
                print(f"{sent['type']}: {reply}", file=sys.stderr)
                return 1
    print(json.dumps(reply))
    return 0


def metric(name: str, *labels: str) -> int:
    """Sum of the samples of ``name`` (with every LABEL=VALUE) in the exposition on stdin."""
    want = [f'{k}="{v}"' for k, v in (lab.split("=", 1) for lab in labels)]
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$")
    total, found = 0.0, False
    for line in sys.stdin:
        m = pattern.match(line.strip())
        if m and all(w in (m.group(1) or "") for w in want):
            total += float(m.group(2))
            found = True
    if not found:
        print(f"no sample of {name}{{{','.join(want)}}}", file=sys.stderr)
        return 1
    print(f"{total:.0f}")
    return 0


def query(url: str, promql: str) -> int:
    """Number of series Prometheus returns for an instant query (1 if there are none)."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(full, timeout=5) as resp:
        body = json.load(resp)
    result = body.get("data", {}).get("result", [])
    if body.get("status") != "success" or not result:
        print(f"{promql}: {body.get('status')}, {len(result)} series", file=sys.stderr)
        return 1
    jobs = sorted({f"{r['metric'].get('job')}/{r['metric'].get('instance')}" for r in result})
    print(f"{len(result)} series from {', '.join(jobs)}")
    return 0


def main(argv: list[str]) -> int:
    commands = {"signal": signal, "metric": metric, "query": query}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[0]](*argv[1:])
    except (OSError, ValueError, KeyError) as exc:
        print(f"{argv[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
