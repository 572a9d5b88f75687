"""A stand-alone ExabgpSupervisor driven by a JSON file: for the lab and benchmarks, not for production.

Usage: python -m ironlb_lab.exabgp_harness --state STATE.json --status STATUS.json --run-dir DIR

STATE.json holds ``{"config": ExabgpConfig, "passwords": {session: password}, "routes": {session: [Route]}}``
and is re-read whenever it changes (write it with a rename). Sessions with a BFD profile get their BFD
session through the speaker's ``BfdLink``. STATUS.json is rewritten with the session states (and since when,
wall clock), the BFD states and exabgp's PID. SIGTERM stops gracefully (withdraw, then end exabgp), as the
speaker does.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from ironlb.api.contract import ExabgpConfig
from ironlb.speaker.bgp.agent import with_passwords
from ironlb.speaker.bgp.bfd_link import BfdLink
from ironlb.speaker.bgp.exabgp_process import ExabgpSupervisor, SessionState
from ironlb.speaker.bgp.routes import Route


def _routes(data: dict[str, list[dict[str, Any]]]) -> dict[str, frozenset[Route]]:
    return {
        session: frozenset(
            Route(
                r["prefix"],
                tuple(r.get("communities", ())),
                tuple(r.get("large_communities", ())),
                r.get("local_pref"),
            )
            for r in routes
        )
        for session, routes in data.items()
    }


def _config(state: dict[str, Any], closed: dict[str, tuple[str, float]] | None = None) -> ExabgpConfig:
    """The configuration with its passwords, through the speaker's own path (``with_passwords``): the
    state file's passwords stand in for the Secrets, by Secret name."""
    passwords: dict[str, str] = state.get("passwords", {})

    def lookup(namespace: str, name: str) -> dict[str, str] | None:
        password = passwords.get(name)
        return None if password is None else {"password": base64.b64encode(password.encode()).decode()}

    return with_passwords(ExabgpConfig.model_validate(state["config"]), lookup, closed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    state = json.loads(args.state.read_text())
    closed: dict[str, tuple[str, float]] = {}  # sessions left closed, and why (the BGPPeer status's message)
    supervisor: ExabgpSupervisor | None = None

    def lost(peer: str) -> None:  # BFD lost the peer (its thread): as the speaker's BGPAgent does
        if supervisor is not None:
            supervisor.teardown(peer)

    bfd = BfdLink(lost)
    wanted = _config(state, closed)
    applied = bfd.generation
    supervisor = ExabgpSupervisor(bfd.apply(wanted), args.run_dir)
    supervisor.start()
    supervisor.set_routes(_routes(state.get("routes", {})))
    seen = args.state.stat().st_mtime_ns
    status = ""
    while not stop.wait(0.01):
        supervisor.poll()
        mtime = args.state.stat().st_mtime_ns
        changed = mtime != seen
        if changed:
            seen = mtime
            state = json.loads(args.state.read_text())
            wanted = _config(state, closed)
        if changed or bfd.generation != applied:  # a new state file, or BFD closed or opened a session
            applied = bfd.generation
            supervisor.reconfigure(bfd.apply(wanted))
        if changed:
            supervisor.set_routes(_routes(state.get("routes", {})))
        held = bfd.closed()
        states = supervisor.sessions()
        states.update({name: SessionState("Idle", since, why) for name, (why, since) in held.items()})
        text = json.dumps(
            {
                "pid": supervisor.pid,
                "restarts": supervisor.restarts,
                "sessions": {name: s.state for name, s in states.items()},
                "since": {name: s.since for name, s in states.items()},
                "bfd": {name: shown[0] for name in states if (shown := bfd.status(name))},
                "closed": {name: why for name, (why, _) in {**closed, **held}.items()},
            }
        )
        if text != status:
            status = text
            temporary = args.status.with_suffix(".tmp")
            temporary.write_text(text)
            temporary.replace(args.status)
    bfd.stop()
    supervisor.stop()


if __name__ == "__main__":
    main()
