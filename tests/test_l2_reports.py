"""The speaker's Layer 2 reports against the real API server: a report the loop has overtaken while it
waited in the queue (an IP taken over, then handed back) is dropped, never written after the new owner's."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from clusterhelpers import report_exists, wait_until
from ironlb.api.kube import KubeClient
from ironlb.speaker.l2.report import AnnouncementReporter
from ironlb_lab.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane
NAMESPACE = "ironlb-system"


def test_a_queued_report_the_loop_overtook_is_dropped(
    crds_installed: ControlPlane, stop: threading.Event
) -> None:
    kube = KubeClient.from_environment(str(crds_installed.kubeconfig))
    first = ipaddress.ip_address("2001:db8::50")
    gone, kept = ipaddress.ip_address("2001:db8::51"), ipaddress.ip_address("2001:db8::52")
    answering = {
        ("default/first", first): True,
        ("default/overtaken", gone): False,
        ("default/kept", kept): True,
    }
    hold = threading.Event()

    def pace() -> None:
        hold.wait(10)  # the first request waits: the queue fills behind it, as under a CPU quota

    reporter = AnnouncementReporter(
        kube, "node-a", NAMESPACE, lambda _: None, stop, pace, lambda service, ip: answering[(service, ip)]
    )
    reporter.answering("default/first", first, ("eth0",))
    reporter.answering("default/overtaken", gone, ("eth0",))  # taken over, then handed back meanwhile
    reporter.answering("default/kept", kept, ("eth0",))
    hold.set()
    wait_until(lambda: report_exists(kube, NAMESPACE, "default/kept", str(kept)), 30, "the report still true")
    assert not report_exists(kube, NAMESPACE, "default/overtaken", str(gone)), (
        "an overtaken report was written"
    )
