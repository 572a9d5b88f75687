"""exabgp speakers for the lab: one ExabgpSupervisor per node namespace, driven through a JSON state file.

Each runs ``python -m ironlb_lab.exabgp_harness`` inside its node's namespace (the supervisor's
production code, with a file instead of the API server as its input).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.api.contract import BfdSettings, BGPSession, ExabgpConfig, ExabgpNeighbor, SecretRef
from ironlb.speaker.bgp.routes import Route

from .network import Host, LabNetwork


def session_to_router(
    lab: LabNetwork,
    name: str,
    my_asn: int,
    peer_asn: int,
    family: int = 4,
    password: bool = False,
    bfd: BfdSettings | None = None,
    multihop: bool = False,
) -> BGPSession:
    """A session to the lab router (hold time 9 s), with a BFD profile when ``bfd`` is given."""
    router = lab.router
    return BGPSession(
        name=name,
        peer_address=str(router.v4 if family == 4 else router.v6),
        peer_asn=peer_asn,
        my_asn=my_asn,
        hold_time_seconds=9,
        password_secret=SecretRef(namespace="ironlb-system", name=name) if password else None,
        ebgp_multihop=multihop,
        bfd_profile="lab" if bfd is not None else None,
        bfd=bfd,
    )


@dataclass
class LabSpeaker:
    lab: LabNetwork
    host: Host
    workdir: Path
    sessions: tuple[BGPSession, ...]
    passwords: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    @property
    def status_file(self) -> Path:
        return self.workdir / "status.json"

    def config(self) -> ExabgpConfig:
        neighbors = tuple(
            ExabgpNeighbor(
                session=s,
                local_address=str(self.host.v4 if s.family == 4 else self.host.v6),
                router_id=str(self.host.v4),
            )
            for s in self.sessions
        )
        return ExabgpConfig(
            node=self.host.role, neighbors=neighbors, api_command="replaced-by-the-supervisor"
        )

    def write_state(self, routes: dict[str, Iterable[Route]]) -> None:
        state: dict[str, Any] = {
            "config": self.config().model_dump(mode="json"),
            "passwords": self.passwords,
            "routes": {
                name: [
                    {
                        "prefix": r.prefix,
                        "communities": list(r.communities),
                        "large_communities": list(r.large_communities),
                        "local_pref": r.local_pref,
                    }
                    for r in rs
                ]
                for name, rs in routes.items()
            },
        }
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_file)

    def start(self, routes: dict[str, Iterable[Route]] | None = None) -> LabSpeaker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_state(routes or {})
        self.status_file.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "ironlb_lab.exabgp_harness",
            "--state",
            str(self.state_file),
            "--status",
            str(self.status_file),
            "--run-dir",
            str(self.workdir / "run"),
        ]
        hack = str(Path(__file__).resolve().parents[1])  # the harness is lab code: run it from hack/
        path = os.pathsep.join(p for p in (hack, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        self.process = self.lab.spawn(self.host, argv, self.workdir / "speaker.log", env=env)
        return self

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def wait_established(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sessions = self.status().get("sessions", {})
            if sessions and all(state == "Established" for state in sessions.values()):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.host.role}: sessions not established: {self.status()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5) -> None:
        """SIGTERM: graceful (withdraw, Cease). SIGKILL: only the supervisor dies, as with kill -9."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        self.process.wait(timeout=timeout)
