"""BFDProfiles in; the speakers' configuration (each session carries its resolved profile) and a Warning on
every BGPPeer naming a profile that does not exist out.

A peer whose profile is missing stays closed on every node (MetalLB refuses such a peer): opening it
without BFD would hide the fast failure detection its admin asked for. The speakers say so in the
BGPPeer's ``status.nodes``; the operator, which may not write BGPPeer status, tells it with an event.
"""

from __future__ import annotations

import logging

from ironlb.api import BFDProfileSpec

from .state import Body, OperatorState

log = logging.getLogger("ironlb.operator")
TOPIC = "bfdProfile"


class BfdProfileHandler:
    def __init__(self, state: OperatorState) -> None:
        self.state = state

    def set_profile(self, body: Body, deleted: bool) -> None:
        if body["metadata"].get("namespace") != self.state.namespace:
            return
        name = body["metadata"]["name"]
        spec = None if deleted else BFDProfileSpec.model_validate(body.get("spec") or {})
        if self.state.bfd_profiles.get(name) == spec:
            return  # a resync, or a change of metadata only
        if spec is None:
            self.state.bfd_profiles.pop(name, None)
        else:
            self.state.bfd_profiles[name] = spec
        log.info("BFDProfile %s %s", name, "deleted" if spec is None else "in force")
        self.state.refresh_global()
        self.report_missing()

    def report_missing(self) -> None:
        """A Warning event on each BGPPeer whose bfdProfile does not exist (once, until it is resolved)."""
        state = self.state
        for name, spec in sorted(state.peers.items()):
            ref = state.peer_refs.get(name)
            if ref is None:
                continue
            profile = spec.bfd_profile
            if not profile or profile in state.all_bfd_profiles():
                state.events.forget_topic(ref, TOPIC)
                continue
            message = (
                f"BFDProfile {state.namespace}/{profile} does not exist: the BGP sessions of this peer stay"
                " closed until it does"
            )
            state.events.once(ref, TOPIC, "Warning", "BFDProfileMissing", message)
