"""An upgrade of IronLB by OLM under traffic, as tests/test_olm_lab.py checks it and hack/bench/upgrade_bench
measures it.

Bundle version N+1 ``replaces`` N and names new image tags (the lab tags the images it built: there is no
registry to push to); OLM replaces the CSV and rolls the operator's Deployment, whose new operator rolls the
speaker DaemonSet (RELATED_IMAGE_SPEAKER). Meanwhile a client on the LAN curls a Layer 2 Service and a host
behind the BIRD2 router a BGP one, both in front of the seed's VM, every 50 ms.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from ironlb.api.kube import KubeClient
from ironlb.operator.manifests import OPERATOR_NAME, SPEAKER_NAME

from . import containers
from .bgplab import bgp_peer, start_router
from .demo import OutageMeter, wait_for
from .kubevirt import LabKubeVirt
from .l2lab import BUNDLE, L2Lab
from .network import Host
from .olm import bundle_objects
from .routers import Bird
from .workloads import LabKubelet, LabProxy

Json = dict[str, Any]
VM_MANIFEST = BUNDLE.parent / "docs" / "examples" / "seed" / "vm.yaml"
Outage = tuple[float, int, int]  # longest failing stretch (s), failed requests, requests


def next_version(csv: Json, version: str) -> Json:
    """The CSV of version ``version``, replacing ``csv``, every image of it retagged."""
    text = json.dumps(csv)
    old = csv["spec"]["version"]
    for image in {i["image"] for i in csv["spec"].get("relatedImages") or []}:
        new_image = image.replace(f":v{old}", f":v{version}")
        subprocess.run([*containers.PODMAN, "tag", image, new_image], check=True)
        text = text.replace(image, new_image)
    upgraded: Json = json.loads(text)
    upgraded["metadata"]["name"] = csv["metadata"]["name"].replace(old, version)
    upgraded["spec"]["version"] = version
    upgraded["spec"]["replaces"] = csv["metadata"]["name"]
    return upgraded


def speaker_image(csv: Json) -> str:
    deployment = csv["spec"]["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"]
    env = deployment["containers"][0].get("env") or []
    return str(next(e["value"] for e in env if e["name"] == "RELATED_IMAGE_SPEAKER"))


def answers(host: Host, url: str) -> bool:
    return host.run("curl", "-s", "-m", "1", "-o", "/dev/null", url).returncode == 0


def rolled_out(lab: L2Lab, image: str) -> bool:
    """Every speaker runs ``image`` and is available; so is every replica of the operator's Deployment."""

    def get(kind: str, name: str) -> Json:
        return dict(
            json.loads(lab.plane.kubectl("get", kind, name, "-n", lab.namespace, "-o", "json").stdout)
        )

    daemonset, deployment = get("daemonset", SPEAKER_NAME), get("deployment", OPERATOR_NAME)
    status, rollout = daemonset.get("status") or {}, deployment.get("status") or {}
    desired = status.get("desiredNumberScheduled", -1)
    return bool(
        daemonset["spec"]["template"]["spec"]["containers"][0]["image"] == image
        and status.get("updatedNumberScheduled") == desired == status.get("numberAvailable")
        and rollout.get("updatedReplicas") == rollout.get("replicas") == rollout.get("availableReplicas")
    )


@dataclass
class Traffic:
    """The seed's VM behind node2 with a Layer 2 and a BGP Service in front of it, and the router."""

    lab: L2Lab
    namespace: str  # where the VM and its Services live
    l2_pool: str = "olm-pool"  # an IPAddressPool with an L2Advertisement, in the lab's namespace
    bgp_pool: str = "203.0.113.160/28"

    def start(self) -> Traffic:
        lab = self.lab
        self.proxy = LabProxy(lab.lab, KubeClient.from_environment(str(lab.plane.kubeconfig))).start()
        self.virt = LabKubeVirt(LabKubelet(lab.lab, lab.plane, lab.workdir), nodes=[2])
        self.virt.install()
        self.virt.start()
        self.router: Bird = start_router(lab, lab.workdir / "bird")
        vm = VM_MANIFEST.read_text().replace("namespace: default", f"namespace: {self.namespace}")
        lab.plane.kubectl("apply", "-f", "-", input=vm)
        wait_for(lambda: self.virt.pod_of(self.namespace, "fedora-nginx") is not None, 60, "the VM's pod")
        lab.plane.kubectl("apply", "-f", "-", input=json.dumps(bgp_peer(lab, "upgrade-router")))
        lab.plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in self._objects()))
        l2_ip, bgp_ip = self._ip("web"), self._ip("web-bgp")
        self.l2_url, self.bgp_url = f"http://{l2_ip}:5678/", f"http://{bgp_ip}:5678/"
        hops = {str(lab.lab.node(n).v4) for n in range(1, lab.nodes + 1)}
        wait_for(
            lambda: getattr(self.router.routes().get(f"{bgp_ip}/32"), "next_hops", None) == hops, 60, "ECMP"
        )
        wait_for(lambda: answers(lab.lab.client, self.l2_url), 60, f"curl {self.l2_url}")
        wait_for(lambda: answers(lab.lab.remote, self.bgp_url), 60, f"curl {self.bgp_url}")
        return self

    def stop(self) -> None:
        for part in ("router", "virt", "proxy"):
            if hasattr(self, part):
                getattr(self, part).stop()

    def _ip(self, service: str) -> str:
        path = "jsonpath={.status.loadBalancer.ingress[0].ip}"
        found: list[str] = []

        def assigned() -> bool:
            found[:] = [
                self.lab.plane.kubectl("get", "svc", service, "-n", self.namespace, "-o", path).stdout
            ]
            return bool(found[0])

        wait_for(assigned, 60, f"an IP on {service}")
        return found[0]

    def _objects(self) -> list[Json]:
        def service(name: str, annotations: dict[str, str]) -> Json:
            return {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"metallb-service": "nginx"},
                    "ports": [{"name": "http", "port": 5678, "targetPort": 80, "protocol": "TCP"}],
                    "externalTrafficPolicy": "Cluster",
                },
            }

        group = "ironlb.io/v1beta1"
        metadata = {"name": "upgrade-bgp", "namespace": self.lab.namespace}
        return [
            {
                "apiVersion": group,
                "kind": "IPAddressPool",
                "metadata": metadata,
                "spec": {"addresses": [self.bgp_pool], "autoAssign": False},
            },
            {
                "apiVersion": group,
                "kind": "BGPAdvertisement",
                "metadata": metadata,
                "spec": {"ipAddressPools": ["upgrade-bgp"]},
            },
            service("web", {"metallb.universe.tf/address-pool": self.l2_pool}),
            service("web-bgp", {"metallb.universe.tf/address-pool": "upgrade-bgp"}),
        ]


@dataclass
class UpgradeResult:
    csv: Json  # the new version's
    rolled: float  # seconds from applying it until every replica and speaker ran it
    layer2: Outage
    bgp: Outage


def upgrade(lab: L2Lab, traffic: Traffic, current: Json, version: str) -> UpgradeResult:
    """Apply ``version`` over ``current`` through OLM, under traffic; waits until everything rolled."""
    upgraded = next_version(current, version)
    with (
        OutageMeter(lab.lab.client, traffic.l2_url) as l2,
        OutageMeter(lab.lab.remote, traffic.bgp_url) as bgp,
    ):
        started = time.monotonic()
        name = lab.olm.install(BUNDLE, lab.namespace, csv=upgraded)
        lab.olm.wait_phase(lab.namespace, name, "Succeeded", timeout=240)
        replaced = ("get", "csv", current["metadata"]["name"], "-n", lab.namespace)
        wait_for(lambda: lab.plane.kubectl(*replaced, check=False).returncode != 0, 120, "the old CSV gone")
        image = speaker_image(upgraded)
        wait_for(lambda: rolled_out(lab, image), 300, "the operator and every speaker rolled")
        rolled = time.monotonic() - started
        time.sleep(2)
    return UpgradeResult(upgraded, rolled, l2.outage(), bgp.outage())


def installed_csv() -> Json:
    return bundle_objects(BUNDLE)[0]
