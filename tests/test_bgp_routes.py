"""BGP route selection (MetalLB's rules), exabgp command lines, route diffs and events: pure functions."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from ironlb.api.contract import (
    BGPAdvertising,
    BGPSession,
    PeerPlacement,
    ServiceAnnouncement,
    SpeakerGlobalConfig,
)
from ironlb.speaker.bgp.exabgp_api import (
    Change,
    announce_command,
    diff_routes,
    end_of_rib_commands,
    parse_event,
    parse_negotiated,
    resend_routes,
    withdraw_command,
)
from ironlb.speaker.bgp.routes import Route, bgp_routes, normalise_community
from ironlb_lab.routers import parse_bird_routes

V4 = BGPSession(name="tor-v4", peer_address="198.51.100.126", peer_asn=64500, my_asn=64512)
V6 = BGPSession(name="tor-v6", peer_address="2001:db8:100::7e", peer_asn=64500, my_asn=64512)
IBGP = BGPSession(name="rr", peer_address="198.51.100.125", dynamic_asn="internal", my_asn=64512)
NODES = ("n1", "n2", "n3")


def config(
    *advertisements: BGPAdvertising, peers: tuple[PeerPlacement, ...] | None = None
) -> SpeakerGlobalConfig:
    placements = peers or tuple(PeerPlacement(session=s, nodes=NODES) for s in (V4, V6, IBGP))
    return SpeakerGlobalConfig(bgp=advertisements, peers=placements)


def service(
    ips: tuple[str, ...] = ("203.0.113.5",), local: bool = False, bgp: tuple[str, ...] = ("a",)
) -> ServiceAnnouncement:
    return ServiceAnnouncement(service="default/web", ips=ips, pool="p", local_traffic=local, bgp=bgp)


ALL = BGPAdvertising(name="a", nodes=NODES)


def test_a_cluster_service_is_announced_by_every_selected_node_to_each_session_of_its_family() -> None:
    routes = bgp_routes(
        "n2", config(ALL), [service(("203.0.113.5", "2001:db8:1::5"))], {"default/web": frozenset({"n1"})}
    )
    assert routes == {
        "tor-v4": {Route("203.0.113.5/32")},
        "tor-v6": {Route("2001:db8:1::5/128")},
        "rr": {Route("203.0.113.5/32")},
    }


def test_no_ready_endpoint_or_local_policy_without_a_local_endpoint_announces_nothing() -> None:
    empty: dict[str, frozenset[Route]] = {"tor-v4": frozenset(), "tor-v6": frozenset(), "rr": frozenset()}
    assert bgp_routes("n1", config(ALL), [service()], {}) == empty
    assert bgp_routes("n1", config(ALL), [service(local=True)], {"default/web": frozenset({"n2"})}) == empty
    local = bgp_routes("n2", config(ALL), [service(local=True)], {"default/web": frozenset({"n2"})})
    assert local["tor-v4"] == {Route("203.0.113.5/32")}


def test_advertisement_nodes_peers_and_peer_placement_limit_the_routes() -> None:
    only_n1 = BGPAdvertising(name="a", nodes=("n1",), peers=("tor-v4",))
    ready = {"default/web": frozenset(NODES)}
    assert bgp_routes("n2", config(only_n1), [service()], ready)["tor-v4"] == frozenset()
    routes = bgp_routes("n1", config(only_n1), [service()], ready)
    assert routes["tor-v4"] == {Route("203.0.113.5/32")} and routes["rr"] == frozenset()
    placed = (PeerPlacement(session=V4, nodes=("n3",)),)
    assert bgp_routes("n1", config(ALL, peers=placed), [service()], ready) == {}
    assert bgp_routes("n1", config(ALL), [service(bgp=("missing",))], ready)["tor-v4"] == frozenset()


def test_attributes_aggregation_and_merging_of_several_advertisements() -> None:
    first = BGPAdvertising(
        name="a", nodes=NODES, communities=("64512:2", "no-export"), local_pref=100, aggregation_length=24
    )
    second = BGPAdvertising(
        name="b", nodes=NODES, communities=("64512:1",), large_communities=("large:1:2:3",), local_pref=200
    )
    announcements = [service(("203.0.113.5",), bgp=("a", "b")), service(("203.0.113.9",), bgp=("a",))]
    announcements[1] = announcements[1].model_copy(update={"service": "default/other"})
    ready = {"default/web": frozenset(NODES), "default/other": frozenset(NODES)}
    routes = bgp_routes("n1", config(first, second), announcements, ready)
    assert routes["tor-v4"] == {
        Route("203.0.113.0/24", ("64512:2", "65535:65281")),
        Route("203.0.113.5/32", ("64512:1",), ("1:2:3",)),
    }
    # iBGP only: localPref, the highest of the advertisements of one prefix
    assert routes["rr"] == {
        Route("203.0.113.0/24", ("64512:2", "65535:65281"), (), 100),
        Route("203.0.113.5/32", ("64512:1",), ("1:2:3",), 200),
    }


addresses = st.ip_addresses(network="203.0.113.0/24").map(str) | st.ip_addresses(network="2001:db8::/64").map(
    str
)


@given(
    st.lists(addresses, min_size=1, max_size=20, unique=True),
    st.integers(24, 32),
    st.integers(64, 128),
    st.sets(st.sampled_from(NODES)),
    st.booleans(),
)
def test_properties_of_route_selection(
    ips: list[str], length: int, length_v6: int, ready: set[str], local: bool
) -> None:
    advertisement = BGPAdvertising(
        name="a", nodes=NODES, aggregation_length=length, aggregation_length_v6=length_v6
    )
    announcements = [
        ServiceAnnouncement(service=f"s{i}", ips=(ip,), pool="p", local_traffic=local, bgp=("a",))
        for i, ip in enumerate(ips)
    ]
    routes = bgp_routes(
        "n1", config(advertisement), announcements, {f"s{i}": frozenset(ready) for i in range(len(ips))}
    )
    announced = ("n1" in ready) if local else bool(ready)
    for name, family in (("tor-v4", 4), ("tor-v6", 6)):
        prefixes = {ipaddress.ip_network(r.prefix) for r in routes[name]}
        assert len(prefixes) == len(routes[name])  # aggregation de-duplicates
        assert all(p.version == family for p in prefixes)
        expected = {
            ipaddress.ip_network(f"{ip}/{length if ':' not in ip else length_v6}", strict=False)
            for ip in ips
            if ipaddress.ip_address(ip).version == family
        }
        assert prefixes == (expected if announced else set())
    assert all(r.local_pref is None for r in routes["tor-v4"])


def test_commands_follow_exabgp_syntax() -> None:
    route = Route("203.0.113.0/24", ("64512:1", "65535:65281"), ("1:2:3",), 150)
    assert announce_command("198.51.100.126", route) == (
        "neighbor 198.51.100.126 announce route 203.0.113.0/24 next-hop self"
        " community [ 64512:1 65535:65281 ] large-community [ 1:2:3 ] local-preference 150"
    )
    assert announce_command("2001:db8::1", Route("2001:db8:1::/64")) == (
        "neighbor 2001:db8::1 announce route 2001:db8:1::/64 next-hop self"
    )
    assert (
        withdraw_command("198.51.100.126", route) == "neighbor 198.51.100.126 withdraw route 203.0.113.0/24"
    )
    assert normalise_community("blackhole") == "65535:666"


def test_diff_withdraws_first_and_reannounces_changed_attributes_without_withdrawing() -> None:
    a, b, c = Route("203.0.113.1/32"), Route("203.0.113.2/32"), Route("203.0.113.3/32")
    b2 = Route("203.0.113.2/32", ("1:1",))
    changes = diff_routes({"s": frozenset({a, b})}, {"s": frozenset({b2, c}), "t": frozenset({a})})
    assert changes == [
        Change("s", "withdraw", a),
        Change("s", "announce", b2),
        Change("s", "announce", c),
        Change("t", "announce", a),
    ]
    assert diff_routes({"s": frozenset({a})}, {"s": frozenset({a})}) == []


route_sets = st.dictionaries(
    st.sampled_from(["s", "t"]),
    st.frozensets(
        st.builds(
            Route, st.sampled_from([f"203.0.113.{i}/32" for i in range(5)]), st.sampled_from([(), ("1:1",)])
        )
    ),
)


@given(route_sets, route_sets)
def test_applying_a_diff_reaches_the_wanted_prefixes(
    old: dict[str, frozenset[Route]], new: dict[str, frozenset[Route]]
) -> None:
    old = {s: frozenset({r.prefix: r for r in rs}.values()) for s, rs in old.items()}
    new = {s: frozenset({r.prefix: r for r in rs}.values()) for s, rs in new.items()}
    state = {s: {r.prefix: r for r in rs} for s, rs in old.items()}
    for change in diff_routes(old, new):
        if change.action == "withdraw":
            del state[change.session][change.route.prefix]
        else:
            state.setdefault(change.session, {})[change.route.prefix] = change.route
    assert {s: set(rs.values()) for s, rs in state.items() if rs} == {
        s: set(rs) for s, rs in new.items() if rs
    }


def test_neighbor_events_are_parsed_and_everything_else_ignored() -> None:
    line = (
        '{ "exabgp": "5.0.0", "time": 1.0, "type": "state", "neighbor": { "address": {'
        ' "local": "198.51.100.11", "peer": "198.51.100.126" }, "asn": { "local": 64512, "peer": 64500 },'
        ' "state": "down", "reason": "x" } }'
    )
    event = parse_event(line)
    assert event is not None and (event.peer_address, event.state, event.reason) == (
        "198.51.100.126",
        "Idle",
        "x",
    )
    assert parse_event("done") is None and parse_event("{broken") is None
    assert parse_event('{"type": "update"}') is None


def test_what_a_session_negotiated_is_read_and_its_end_of_rib_follows_each_family() -> None:
    line = (  # as exabgp 5's JSON encoder writes it (``negotiated;`` in the neighbor's api block)
        '{ "exabgp": "5.0.0", "time": 1.0, "host" : "n1", "pid" : 7, "ppid" : 1, "counter": 2, "type": '
        '"negotiated", "neighbor": { "address": { "local": "198.51.100.11", "peer": "198.51.100.126" }, '
        '"asn": { "local": 64512, "peer": 64500 } , "negotiated": { "message_size": 4096, "hold_time": 9, '
        '"asn4": true, "multisession": false, "operational": false, "refresh": "normal", "families": '
        '["ipv4 unicast", "ipv6 unicast"], "nexthop": [], "add_path": {"send": [], "receive": []} }  } }'
    )
    negotiated = parse_negotiated(line)
    assert negotiated is not None and negotiated.peer_address == "198.51.100.126"
    assert end_of_rib_commands(negotiated.peer_address, negotiated.families) == [
        "neighbor 198.51.100.126 announce eor ipv4 unicast",
        "neighbor 198.51.100.126 announce eor ipv6 unicast",
    ]
    assert parse_negotiated(line.replace('"negotiated", "neighbor"', '"state", "neighbor"')) is None
    assert parse_negotiated("done") is None and parse_event(line) is None


BIRD_OUTPUT = """BIRD 2.0.12 ready.
Table master4:
203.0.113.10/32      unicast [peer0 17:50:01.123] * (100) [AS64512i]
\tvia 198.51.100.11 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.local_pref: 100
\tBGP.community: (64512,100) (65535,65281)
\tBGP.large_community: (64512, 1, 2)
                     unicast [peer1 17:50:01.125] (100) [AS64512i]
\tvia 198.51.100.12 on eth0
\tBGP.community: (64512,100)
"""


def test_bird_rib_parser_merges_paths() -> None:
    info = parse_bird_routes(BIRD_OUTPUT)["203.0.113.10/32"]
    assert info.next_hops == {"198.51.100.11", "198.51.100.12"}
    assert info.communities == {"64512:100", "65535:65281"} and info.large_communities == {"64512:1:2"}
    assert info.local_pref == 100


def test_a_resend_announces_only_what_was_sent_and_is_still_wanted() -> None:
    kept, gone, new = Route("203.0.113.1/32"), Route("203.0.113.2/32"), Route("203.0.113.3/32")
    sent = {"a": frozenset({kept, gone}), "b": frozenset({kept})}
    wanted = {"a": frozenset({kept, new}), "b": frozenset({kept})}
    assert resend_routes(sent, wanted, ["a"]) == [Change("a", "announce", kept)]
    assert resend_routes(sent, wanted, []) == []
    assert all(change.action == "announce" for change in resend_routes(sent, wanted, ["a", "b"]))
