"""Run the real ``ironlb-operator`` process against a lab control plane (tests, demo, benchmarks), with the
operator's own ServiceAccount, never as admin."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ironlb.operator.manifests import NAMESPACE, OPERATOR_NAME

from .accounts import account_kubeconfig, install_accounts
from .controlplane import ControlPlane, _die_with_parent, free_port


@dataclass
class OperatorProcess:
    plane: ControlPlane
    args: tuple[str, ...] = ()
    log_path: Path | None = None
    metrics_port: int = field(default_factory=free_port)
    liveness_port: int = field(default_factory=free_port)
    proxy_port: int | None = None  # reach the API server through a fault proxy on this port
    # install the speaker DaemonSet: only labs run its pods, and pods nobody runs keep their host ports
    # booked on the shared control plane's nodes, so other labs' speakers could not be scheduled
    speakers: bool = False
    process: subprocess.Popen[bytes] | None = None

    def start(self, wait_for: str = "rebuilt state", timeout: float = 60) -> OperatorProcess:
        assert self.plane.workdir is not None
        self.log_path = self.log_path or self.plane.workdir / f"operator-{time.monotonic_ns()}.log"
        executable = Path(sys.executable).parent / "ironlb-operator"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(executable),
                    "--log-format",
                    "plain",
                    "--metrics-port",
                    str(self.metrics_port),
                    "--liveness-port",
                    str(self.liveness_port),
                    "--lease-duration",
                    "6",
                    *(() if self.speakers else ("--no-speakers",)),
                    *self.args,
                ],
                env={**self.plane.env(), "KUBECONFIG": str(self._kubeconfig())},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        if wait_for:
            self.wait_for_log(wait_for, timeout)
        return self

    def _kubeconfig(self) -> Path:
        """The operator's own ServiceAccount (RBAC applies, as in a cluster), in its --namespace."""
        assert self.plane.workdir is not None
        arguments = list(self.args)
        namespace = arguments[arguments.index("--namespace") + 1] if "--namespace" in arguments else NAMESPACE
        install_accounts(self.plane, namespace)
        path = self.plane.workdir / f"operator-{namespace}-{self.liveness_port}.kubeconfig"
        return account_kubeconfig(self.plane, namespace, OPERATOR_NAME, path, self.proxy_port)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"ironlb-operator exited with {self.process.returncode}:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.1)
        raise TimeoutError(f"ironlb-operator did not log {text!r} in {timeout} s:\n{self.log_text()[-3000:]}")

    def signal(self, number: int) -> None:
        """SIGSTOP / SIGCONT (a frozen process), or any other signal, by PID."""
        assert self.process is not None
        self.process.send_signal(number)

    def healthz(self) -> int:
        """The HTTP status of the liveness endpoint (0: no answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
