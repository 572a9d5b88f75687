"""Benchmark: resident memory and idle CPU of the full speaker (`ironlb-speaker run`, the DaemonSet's pod
as the lab runs it) idle and once it answers for COUNT Service IPs.
Run: hack/bench/run.sh speaker_rss_bench [count]   (default 1000; needs root for network namespaces)

One lab node, so its speaker owns every IP. The Services are IPv6 single-stack without NodePorts: the
documentation IPv4 ranges are /24s, too small for 1,000 ClusterIPs or load-balancer IPs.
"""

from __future__ import annotations

import random
import re
import sys
import tempfile
import time
from pathlib import Path

from ironlb.api.kube import KubeClient
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab

from bench.services import create_services
from bench.stats import hwm_mib, process_tree, rss_mib, tree_cpu_seconds, tree_rss_mib

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"
IDLE_SECONDS = 60  # CPU is sampled over this long once every IP is announced and reported


def main(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-speaker-rss-"))
    with ControlPlane(with_controllers=True, service_cidrs="2001:db8:5e::/108,192.0.2.0/24") as plane:
        plane.install_crds(REPO_ROOT / "crds")
        kube = KubeClient.from_environment(str(plane.kubeconfig))
        with L2Lab(plane, workdir, nodes=1) as lab:
            plane.announce_pool("rss", "2001:db8:300::/118" if count <= 1000 else "2001:db8:300::/112")
            kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
            node = lab.lab.node(1)
            pod = lab.speaker(node.role)
            assert pod is not None and pod.process is not None
            pid = pod.process.pid
            # `ip netns exec` execs the speaker, so the pod's PID is the speaker's own Python process
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            children = process_tree(pid)[1:]  # the heartbeat process
            print(f"speaker pid {pid}: {' '.join(c.decode() for c in command[:3])} (children: {children})")

            def announced() -> int:
                metrics = node.run("curl", "-s", f"http://{node.v4}:7473/metrics").stdout  # the node's IP
                match = re.search(r'^ironlb_speaker_announced_ips\{node="node1"\} (\S+)', metrics, re.M)
                return int(float(match.group(1))) if match else -1

            time.sleep(10)
            print(f"speaker RSS idle ({announced()} IPs): {tree_rss_mib(pid):.1f} MiB", flush=True)
            began = time.monotonic()
            names = [f"svc-{n:04d}" for n in range(count)]
            # selector-less, each with its own EndpointSlice: no controller writes placeholder slices into the
            # idle minute (it would measure their watch events, not an idle speaker)
            create_services(kube, NAMESPACE, names, 8, ready_endpoints=True, selector=False)
            while (owned := announced()) < count:
                if time.monotonic() - began > 600:
                    raise TimeoutError(f"the speaker announces {owned} of {count} IPs")
                time.sleep(0.5)
            print(f"{count} Services created and announced in {time.monotonic() - began:.1f} s", flush=True)
            reports = f"/apis/ironlb.io/v1beta1/namespaces/{lab.namespace}/servicel2statuses"
            written, progress = 0, time.monotonic()
            while written < count and time.monotonic() - progress < 30:  # each takeover's report
                time.sleep(2)
                if (now_written := len(kube.get(reports).get("items", []))) > written:
                    written, progress = now_written, time.monotonic()
            print(f"... and reported {written} of them (ServiceL2Status) in {progress - began:.1f} s")
            time.sleep(10)  # the last Events
            sample = random.Random(1).sample(range(1, count + 1), 20)
            answered = sum(lab.ndp(f"2001:db8:300::{n:x}") == node.mac() for n in sample)
            print(f"NDP from the client: {answered} of 20 sampled IPs answered by node1")
            print(
                f"speaker RSS with {owned} owned IPs: {tree_rss_mib(pid):.1f} MiB "
                f"(peak {hwm_mib(pid):.1f} MiB of the speaker process; processes: "
                + ", ".join(f"{member} {rss_mib(member):.1f} MiB" for member in process_tree(pid))
                + ")",
                flush=True,
            )
            used = tree_cpu_seconds(pid)
            time.sleep(IDLE_SECONDS)
            idle = (tree_cpu_seconds(pid) - used) / IDLE_SECONDS
            print(f"speaker CPU idle with {owned} owned IPs over {IDLE_SECONDS} s: {idle:.2%} of one core")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
