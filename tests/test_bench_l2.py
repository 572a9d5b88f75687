"""The Layer 2 benchmarks' shared parts (hack/bench): the probe's ARP frames against scapy and the speaker,
the probing loops over a real socket answered by the speaker's own frame code, the report's wording, the
memory figures, and the probes and watchers end to end against the real responder in the lab."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from bench.arp_probe import ARP, replied_mac, request
from bench.l2bench import HACK, Wording, report, run_probe, start_responder
from bench.l2probe import Answer, ProbeResult, flood, time_answers, watch
from bench.stats import hwm_mib, percentile, proc_status_mib, rss_mib
from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.packets import ArpRequest, arp_reply, parse_arp_request
from ironlb_lab.network import LabNetwork
from scapy.layers import l2 as scapy_l2

macs = st.binary(min_size=6, max_size=6).map(lambda raw: bytes([raw[0] & 0xFE]) + raw[1:])  # unicast
v4 = st.integers(min_value=1, max_value=2**32 - 2).map(ipaddress.IPv4Address)
CLIENT_MAC, CLIENT_IP, TARGET = b"\x02\0\0\0\0\x64", "192.0.2.100", "192.0.2.10"
OWNER, SUCCESSOR = b"\x02\0\0\0\0\x0b", b"\x02\0\0\0\0\x0c"


def _text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# ------------------------------------------------------------------------------------ the probe's ARP frames
@given(ours=macs, source=v4, target=v4)
def test_the_arp_request_is_what_scapy_and_the_speaker_read(
    ours: bytes, source: ipaddress.IPv4Address, target: ipaddress.IPv4Address
) -> None:
    frame = request(ours, str(source), str(target))
    dissected = scapy_l2.Ether(frame)
    assert dissected.dst == "ff:ff:ff:ff:ff:ff" and dissected.src == _text(ours)
    arp = dissected[scapy_l2.ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, _text(ours), str(source), str(target))
    parsed = parse_arp_request(frame)
    assert parsed == ArpRequest(ours, source, target)


@given(theirs=macs, ours=macs, source=v4, target=v4)
def test_the_probe_reads_replies_for_its_target_only(
    theirs: bytes, ours: bytes, source: ipaddress.IPv4Address, target: ipaddress.IPv4Address
) -> None:
    asked = parse_arp_request(request(ours, str(source), str(target)))
    assert asked is not None
    reply = arp_reply(theirs, target, asked)
    assert replied_mac(reply, target.packed) == _text(theirs)
    other = ipaddress.IPv4Address((int(target) + 1) % 2**32)
    assert replied_mac(reply, other.packed) is None
    assert replied_mac(request(ours, str(source), str(target)), target.packed) is None
    by_scapy = scapy_l2.Ether(src=_text(theirs), dst=_text(ours)) / scapy_l2.ARP(
        op=2, hwsrc=_text(theirs), psrc=str(target), hwdst=_text(ours), pdst=str(source)
    )
    assert replied_mac(bytes(by_scapy), target.packed) == _text(theirs)


# ------------------------------------------------------------------ the loops, answered by the speaker's code
class Responder:
    """The far end of a socket pair, answering the probe's ARP requests with the speaker's ``arp_reply``:
    ``mac(n)`` says who answers the n-th request (None: nobody), after a reply for another IP (noise)."""

    def __init__(self, mac: Callable[[int], bytes | None]) -> None:
        self.probe, self._end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._end.settimeout(0.05)
        self._mac = mac
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.asked = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._end.recv(2048)
            except TimeoutError:
                continue
            asked = parse_arp_request(frame)
            assert asked is not None
            who = self._mac(self.asked)
            self.asked += 1
            if who is not None:
                noise = arp_reply(who, ipaddress.IPv4Address(int(asked.target_ip) + 1), asked)
                try:
                    self._end.send(noise)
                    self._end.send(arp_reply(who, asked.target_ip, asked))
                except OSError:  # the probe's queue stayed full (flood): a reply lost on the way
                    pass

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.probe.close()
        self._end.close()


def _query() -> tuple[bytes, Answer]:
    return ARP.query_and_answer(CLIENT_MAC, CLIENT_IP, TARGET)


def test_latencies_are_timed_per_answer_and_unanswered_requests_counted_lost() -> None:
    query, answer = _query()
    with Responder(lambda n: None if n % 3 == 2 else OWNER) as responder:
        latencies, lost = time_answers(responder.probe, query, answer, 9, timeout=0.05)
    assert lost == 3
    assert len(latencies) == 6 and all(0 < latency < 0.05 for latency in latencies)


def test_a_flood_counts_the_answers_for_the_target_only() -> None:
    query, answer = _query()
    with Responder(lambda n: OWNER) as responder:
        sent, received = flood(responder.probe, query, answer, 0.3)
    assert sent >= responder.asked > 0
    assert 0 < received <= responder.asked  # the noise (replies for another IP) is not counted


def test_a_watch_lists_each_change_of_the_answering_mac_once() -> None:
    query, answer = _query()
    with Responder(lambda n: OWNER if n < 10 else None if n < 15 else SUCCESSOR) as responder:
        began = time.time()
        changes = watch(responder.probe, query, answer, 0.4, every=0.01)
    assert [mac for _, mac in changes] == [_text(OWNER), _text(SUCCESSOR)]
    assert began < changes[0][0] < changes[1][0] < time.time()


# ----------------------------------------------------------------------------------------- what is printed
def test_the_report_keeps_the_benchmarks_wording() -> None:
    result: ProbeResult = {
        "latencies": [30e-6, 40e-6, 50e-6, 1e-3],
        "lost": 1,
        "flood_sent": 5000,
        "flood_received": 4000,
        "flood_seconds": 2.0,
    }
    assert report(result, Wording("ARP request -> reply", "requests", "replies", "replies/s")) == [
        "ARP request -> reply at the client: p50 50 us, p99 1000 us, max 1000 us over 4 requests (1 lost); "
        "mean 280 us",
        "flood for 2 s: 5000 requests sent, 4000 replies = 2000 replies/s",
    ]
    assert report(result, Wording("NS -> NA", "solicitations", "advertisements", "answers/s"))[1] == (
        "flood for 2 s: 5000 solicitations sent, 4000 advertisements = 2000 answers/s"
    )


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1), st.floats(0, 0.999))
def test_percentile_is_nearest_rank(values: list[float], fraction: float) -> None:
    p = percentile(values, fraction)
    assert p in values
    assert sum(v <= p for v in values) > fraction * len(values) >= sum(v < p for v in values)


def test_memory_figures_come_from_proc_status() -> None:
    assert proc_status_mib("Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n", "VmRSS") == 10.0
    assert proc_status_mib("VmRSS:\t10240 kB\n", "VmHWM") == 0.0
    assert 0 < rss_mib(os.getpid()) <= hwm_mib(os.getpid())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert rss_mib(gone.pid) == hwm_mib(gone.pid) == 0.0


# -------------------------------------------------------------------- end to end, against the real responder
V4, V6 = "203.0.113.10", "2001:db8:300::10"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNetwork]:
    with LabNetwork(nodes=1) as network:
        start_responder(network, [V4, V6], tmp_path_factory.mktemp("responder") / "responder.log")
        yield network


@pytest.mark.parametrize("module", ["arp_probe", "ndp_probe"])
def test_the_probes_time_the_responder(lab: LabNetwork, module: str) -> None:
    v6 = module == "ndp_probe"
    result = run_probe(lab, module, V6 if v6 else V4, str(lab.client.v6 if v6 else lab.client.v4), 20, 0.3)
    assert (len(result["latencies"]), result["lost"]) == (20, 0)
    assert 0 < result["flood_received"] <= result["flood_sent"] and result["flood_seconds"] == 0.3


@pytest.mark.parametrize("module", ["arp_watch", "ndp_watch"])
def test_the_watchers_name_the_answering_node(lab: LabNetwork, module: str) -> None:
    v6 = module == "ndp_watch"
    began = time.time()
    run = lab.client.run(
        "env",
        f"PYTHONPATH={HACK}",
        sys.executable,
        "-m",
        f"bench.{module}",
        V6 if v6 else V4,
        str(lab.client.v6 if v6 else lab.client.v4),
        "0.3",
        check=True,
    )
    ready, changes = run.stdout.splitlines()
    assert ready == "watching"
    [(moment, mac)] = json.loads(changes)
    assert mac == lab.node(1).mac() and began < moment < time.time()
