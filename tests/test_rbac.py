"""RBAC matches the code: every request the operator and the speakers made during the whole suite was allowed,
and ``kubectl auth can-i`` agrees for each, against the real API server.

What the components access is derived, not listed by hand: the session's control plane writes an audit log
of every ServiceAccount's requests (``ControlPlane(audit=True)``), and every lab runs both components with
their own ServiceAccount tokens. This module runs last (conftest.py), so it sees what every other test made
the components do. (Before: the operator watched DaemonSets cluster-wide while its RBAC allowed it only in
its namespace.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from ironlb.operator.manifests import OPERATOR_NAME, SPEAKER_NAME
from ironlb_lab.controlplane import ControlPlane

ACCOUNTS = (OPERATOR_NAME, SPEAKER_NAME)
# an install whose CSV was broken on purpose: its operator is refused what it needs (tests/test_olm_lab.py)
DENIED_ON_PURPOSE = "olm-broken-rbac"


@dataclass(frozen=True, order=True)
class Access:
    account: str  # system:serviceaccount:NS:NAME
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str  # "" for cluster-scoped, or a list/watch across every namespace
    name: str  # "" unless the request named one object

    def can_i(self) -> list[str]:
        """The `kubectl auth can-i` arguments asking the same question as this request."""
        resource = self.resource + (f".{self.group}" if self.group else "")
        target = (
            f"{resource}/{self.name}"
            if self.name and self.verb != "create"  # a list or watch of one name, by fieldSelector, too
            else resource
        )
        argv = ["auth", "can-i", self.verb, target, f"--as={self.account}"]
        argv += [f"--subresource={self.subresource}"] if self.subresource else []
        argv += ["-n", self.namespace] if self.namespace else ["--all-namespaces"]
        return argv

    def __str__(self) -> str:
        where = self.namespace or "cluster"
        sub = f"/{self.subresource}" if self.subresource else ""
        name = f" {self.name}" if self.name else ""
        who = self.account.rsplit(":", 1)[1]
        return f"{who}: {self.verb} {self.group or 'core'}/{self.resource}{sub}{name} in {where}"


def accesses(plane: ControlPlane) -> Iterator[tuple[Access, int]]:
    """(access, HTTP code) of every request IronLB's ServiceAccounts made, from the audit log."""
    with plane.audit_log.open() as log:
        for line in log:
            event = json.loads(line)
            user = event.get("user", {}).get("username", "")
            if not user.startswith("system:serviceaccount:") or user.rsplit(":", 1)[1] not in ACCOUNTS:
                continue
            if user.split(":")[2] == DENIED_ON_PURPOSE:
                continue
            ref = event.get("objectRef") or {}
            if not ref.get("resource"):
                continue  # discovery and health endpoints: open to every authenticated user
            # a name matters only where a rule grants by name (MetalLB's `config`, the speakers' passwords
            # Secret, read with a fieldSelector on metadata.name and written by server-side apply)
            by_name = event["verb"] in ("get", "list", "watch", "patch") and ref["resource"] in (
                "configmaps",
                "secrets",
            )
            named = ref.get("name", "") if by_name else ""
            access = Access(
                user,
                event["verb"],
                ref.get("apiGroup", ""),
                ref["resource"],
                ref.get("subresource", ""),
                ref.get("namespace", ""),
                named,
            )
            yield access, int(event.get("responseStatus", {}).get("code", 0))


@pytest.fixture(scope="module")
def observed(crds_installed: ControlPlane) -> dict[Access, set[int]]:
    time.sleep(2)  # the audit log is written in batches of at most a second
    seen: dict[Access, set[int]] = {}
    for access, code in accesses(crds_installed):
        seen.setdefault(access, set()).add(code)
    return seen


def test_the_suite_ran_both_components_with_their_own_accounts(observed: dict[Access, set[int]]) -> None:
    """A floor, so this module cannot pass on an empty log: the core of what each component does."""
    done = {(a.account.rsplit(":", 1)[1], a.verb, a.resource, a.subresource) for a in observed}
    for expected in [
        (OPERATOR_NAME, "watch", "services", ""),
        (OPERATOR_NAME, "patch", "services", "status"),
        (OPERATOR_NAME, "update", "leases", ""),
        (OPERATOR_NAME, "create", "events", ""),
        (OPERATOR_NAME, "watch", "ipaddresspools", ""),
        (OPERATOR_NAME, "patch", "daemonsets", ""),
        (SPEAKER_NAME, "watch", "configmaps", ""),
        (SPEAKER_NAME, "watch", "services", ""),
        (SPEAKER_NAME, "watch", "endpointslices", ""),
        (SPEAKER_NAME, "patch", "bgppeers", "status"),
        (SPEAKER_NAME, "patch", "servicel2statuses", "status"),
    ]:
        assert expected in done, f"no {expected} in the audit log"


def test_no_request_of_the_operator_or_the_speakers_was_forbidden(observed: dict[Access, set[int]]) -> None:
    forbidden = sorted(str(access) for access, codes in observed.items() if 403 in codes)
    assert not forbidden, "RBAC refused:\n" + "\n".join(forbidden)


def test_kubectl_auth_can_i_allows_everything_the_components_do(
    crds_installed: ControlPlane, observed: dict[Access, set[int]]
) -> None:
    def ask(access: Access) -> str | None:
        answer = crds_installed.kubectl(*access.can_i(), check=False).stdout.strip()
        return None if answer == "yes" else f"{access}: can-i says {answer!r}"

    with ThreadPoolExecutor(8) as pool:
        denied = [refusal for refusal in pool.map(ask, sorted(observed)) if refusal]
    print(f"{len(observed)} distinct accesses checked with kubectl auth can-i")
    assert not denied, "\n".join(denied)


def test_the_speakers_never_write_services(observed: dict[Access, set[int]]) -> None:
    """A speaker's token sits on every node, in a root process on the host network: it may read Services,
    never write them (who answers is reported in ServiceL2Status objects)."""
    writes = [str(a) for a in observed if a.account.endswith(SPEAKER_NAME) and a.resource == "services"]
    assert not [w for w in writes if not any(f": {verb} " in w for verb in ("get", "list", "watch"))], writes
