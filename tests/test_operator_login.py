"""kopf logs in with the credentials KubeClient uses: the API server that KUBERNETES_SERVICE_HOST/PORT name,
not kubernetes.default.svc (which needs cluster DNS: in the lab's containers, which have none, the operator
retried for a minute before it could list anything)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ironlb.api.kube import load_configuration
from ironlb.operator.handlers import connection_info


def test_in_a_pod_the_service_account_and_the_address_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("a-token")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setattr("kubernetes.config.incluster_config.SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr("kubernetes.config.incluster_config.SERVICE_CERT_FILENAME", str(account / "ca.crt"))
    info = connection_info(load_configuration())
    assert info.server == "https://127.0.0.1:6443"
    assert (info.scheme or "").lower() == "bearer" and info.token == "a-token"
    assert info.ca_path == str(account / "ca.crt") and not info.insecure
