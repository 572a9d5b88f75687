"""Start a real etcd + kube-apiserver (and optionally kube-controller-manager and kube-scheduler) on loopback.

Used by the tests, the demo and the benchmarks. Everything runs as child processes of the caller with
generated certificates in a temporary directory; ``stop()`` ends them by PID (TERM, then KILL), and each
child also gets PR_SET_PDEATHSIG so it dies with its parent even if the parent is killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .pki import CertificateAuthority, KeyPair, service_account_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
# Service cluster IPs are virtual, but they still come from the documentation ranges (network safety rule).
DEFAULT_SERVICE_CIDRS = "192.0.2.0/24,2001:db8:5e::/112"
_PR_SET_PDEATHSIG = 1


def log(message: str) -> None:
    print(f"[control-plane {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def find_binaries() -> Path:
    """The directory with kube-apiserver, etcd, ...: KUBEBUILDER_ASSETS, the cache, or a fresh build."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    """A throw-away control plane. Use as a context manager, or call start() and stop()."""

    with_controllers: bool = False
    service_cidrs: str = DEFAULT_SERVICE_CIDRS
    extra_apiserver_args: tuple[str, ...] = ()
    controllers: str = "*"
    binaries: Path | None = None
    workdir: Path | None = None
    components: list[Component] = field(default_factory=list)
    startup_seconds: float = 0.0
    audit: bool = False  # log every request of a ServiceAccount (``audit_log``): what RBAC must allow

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 90.0) -> ControlPlane:
        began = time.monotonic()
        self.binaries = self.binaries or find_binaries()
        self._own_workdir = self.workdir is None
        self.workdir = self.workdir or Path(tempfile.mkdtemp(prefix="ironlb-cp-"))
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            self._wait_ready(timeout)
            if self.with_controllers:
                self._start_controllers()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log(f"ready in {self.startup_seconds:.1f} s at {self.server} (kubeconfig {self.kubeconfig})")
        return self

    def stop(self) -> None:
        """End every component by PID, newest first; safe to call twice."""
        for component in reversed(self.components):
            if component.process.poll() is None:
                component.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for component in reversed(self.components):
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                component.process.kill()
                component.process.wait()
        self.components.clear()
        if (
            self.workdir is not None
            and getattr(self, "_own_workdir", False)
            and not os.environ.get("IRONLB_KEEP_CONTROL_PLANE_DIR")
        ):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "admin.kubeconfig"

    @property
    def kubectl_path(self) -> Path:
        assert self.binaries is not None
        return self.binaries / "kubectl"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the version-matched kubectl against this control plane."""
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def install_crds(self, directory: Path, label: str = "app.kubernetes.io/part-of=ironlb") -> str:
        """Apply the CRDs in ``directory``, wait until the API server serves them; returns kubectl output."""
        applied = self.kubectl("apply", "-f", str(directory)).stdout
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", label)
        return applied

    def announce_pool(self, name: str, *addresses: str, namespace: str = "ironlb-system") -> None:
        """An IPAddressPool and an L2Advertisement announcing it, as the benchmarks and demos need."""
        pool = {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"addresses": list(addresses)},
        }
        advertisement = {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ipAddressPools": [name]},
        }
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in (pool, advertisement)))

    def env(self) -> dict[str, str]:
        """Environment for child processes (operator, speaker, kubectl) that talk to this control plane."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubeconfig_via(self, port: int, name: str) -> Path:
        """A copy of the admin kubeconfig naming https://127.0.0.1:PORT (a fault proxy in front of the API
        server; its certificate covers 127.0.0.1 whatever the port)."""
        assert self.workdir is not None
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(self.kubeconfig.read_text().replace(self.server, f"https://127.0.0.1:{port}"))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------------------------------- faults
    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def freeze(self, name: str) -> None:
        """SIGSTOP a component (``etcd``, ``kube-apiserver``): it keeps its connections, answers nothing."""
        self.component(name).process.send_signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.component(name).process.send_signal(signal.SIGCONT)

    def etcd_revision(self) -> int:
        """etcd's current revision, through its JSON gateway (no etcdctl needed)."""
        reply = self._etcd("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        return int(reply["header"]["revision"])

    def compact(self) -> int:
        """Compact etcd at its current revision, as ``etcdctl compact``: watches from older versions that
        reach etcd get 410 Gone. Returns the revision."""
        revision = self.etcd_revision()
        self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def restart_etcd(self, down_seconds: float = 0.0) -> None:
        """Stop etcd (SIGTERM), wait, start it again on the same data and port."""
        etcd = self.component("etcd")
        etcd.process.terminate()
        etcd.process.wait(timeout=15)
        self.components.remove(etcd)
        time.sleep(down_seconds)
        self._start_etcd(again=True)

    def _etcd(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply

    # ----------------------------------------------------------------------------------------- internals
    def _spawn(self, name: str, argv: list[str]) -> Component:
        assert self.workdir is not None
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                cwd=self.workdir,
            )
        component = Component(name, process, log_path)
        self.components.append(component)
        return component

    def _write_pki(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        pki.mkdir()
        self.ca = CertificateAuthority(pki)
        first_service_ip = _first_service_ip(self.service_cidrs)
        self.serving = self.ca.issue(
            "apiserver",
            "kube-apiserver",
            client=False,
            server_names=(
                "127.0.0.1",
                "::1",
                "localhost",
                first_service_ip,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        self.admin = self.ca.issue("admin", "ironlb-admin", organization="system:masters")
        self.sa_keys = service_account_keys(pki)

    def _start_etcd(self, again: bool = False) -> None:
        """Start etcd; ``again`` reuses the data directory and ports of the previous start."""
        assert self.binaries is not None and self.workdir is not None
        if not again:
            self.etcd_url, self.etcd_peer_port = f"http://127.0.0.1:{free_port()}", free_port()
        peer_port = self.etcd_peer_port
        self._spawn(
            "etcd",
            [
                str(self.binaries / "etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={self.serving.cert}",
                f"--tls-private-key-file={self.serving.key}",
                f"--client-ca-file={self.ca.cert_path}",
                f"--service-account-key-file={self.sa_keys.cert}",
                f"--service-account-signing-key-file={self.sa_keys.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={self.service_cidrs}",
                "--endpoint-reconciler-type=none",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--v=1",
                *self._audit_args(),
                *self.extra_apiserver_args,
            ],
        )
        self._write_kubeconfig(self.kubeconfig, self.admin, "ironlb-admin")

    @property
    def audit_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "audit.log"

    def _audit_args(self) -> list[str]:
        """Metadata (who, verb, resource, namespace, name, response code) of ServiceAccounts' requests."""
        if not self.audit:
            return []
        assert self.workdir is not None
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\n"
            "rules:\n- level: Metadata\n  userGroups: [system:serviceaccounts]\n- level: None\n"
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
        ]

    def _write_kubeconfig(self, path: Path, pair: KeyPair, user: str) -> None:
        def b64(file: Path) -> str:
            return base64.b64encode(file.read_bytes()).decode()

        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: lab\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority-data: {b64(self.ca.cert_path)}\n"
            f"users:\n- name: {user}\n  user:\n    client-certificate-data: {b64(pair.cert)}\n"
            f"    client-key-data: {b64(pair.key)}\n"
            f"contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: {user}\n"
            "current-context: lab\n"
        )
        path.chmod(0o600)

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            for component in self.components:
                if component.process.poll() is not None:
                    raise RuntimeError(
                        f"{component.name} exited with {component.process.returncode}; "
                        f"last lines of {component.log_path}:\n{component.tail()}"
                    )
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError as error:
                last_error = str(error)
            time.sleep(0.2)
        apiserver = next(c for c in self.components if c.name == "kube-apiserver")
        raise TimeoutError(
            f"kube-apiserver not ready after {timeout:.0f} s ({last_error}):\n{apiserver.tail()}"
        )

    def _start_controllers(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        kcm = self.ca.issue("kube-controller-manager", "system:kube-controller-manager")
        scheduler = self.ca.issue("kube-scheduler", "system:kube-scheduler")
        kcm_config, scheduler_config = self.workdir / "kcm.kubeconfig", self.workdir / "scheduler.kubeconfig"
        self._write_kubeconfig(kcm_config, kcm, "system:kube-controller-manager")
        self._write_kubeconfig(scheduler_config, scheduler, "system:kube-scheduler")
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries / "kube-controller-manager"),
                f"--kubeconfig={kcm_config}",
                f"--authentication-kubeconfig={kcm_config}",
                f"--authorization-kubeconfig={kcm_config}",
                f"--service-account-private-key-file={self.sa_keys.key}",
                f"--root-ca-file={self.ca.cert_path}",
                "--use-service-account-credentials=true",
                f"--controllers={self.controllers}",
                f"--service-cluster-ip-range={self.service_cidrs}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries / "kube-scheduler"),
                f"--kubeconfig={scheduler_config}",
                f"--authentication-kubeconfig={scheduler_config}",
                f"--authorization-kubeconfig={scheduler_config}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--v=1",
            ],
        )
        time.sleep(0.5)
        for component in self.components[-2:]:
            if component.process.poll() is not None:
                raise RuntimeError(f"{component.name} exited at start:\n{component.tail()}")


def _first_service_ip(cidrs: str) -> str:
    import ipaddress

    network = ipaddress.ip_network(cidrs.split(",")[0])
    return str(network.network_address + 1)


def main(argv: list[str] | None = None) -> int:
    """Start a control plane and keep it until interrupted (for poking at it by hand)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--with-controllers", action="store_true")
    args = parser.parse_args(argv)
    with ControlPlane(with_controllers=args.with_controllers) as plane:
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    sys.exit(main())
