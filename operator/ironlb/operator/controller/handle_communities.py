"""Community objects in; community aliases in the speakers' configuration, and the BGPAdvertisements whose
aliases they define (or no longer define) re-checked, so each one's status says whether it is in force."""

from __future__ import annotations

import logging

from ironlb.api import CommunitySpec

from .state import Body, OperatorState

log = logging.getLogger("ironlb.operator")


class CommunityHandler:
    def __init__(self, state: OperatorState) -> None:
        self.state = state

    def set_community(self, body: Body, deleted: bool) -> bool:
        """True when the aliases in force changed."""
        state = self.state
        if body["metadata"].get("namespace") != state.namespace:
            return False
        name = body["metadata"]["name"]
        spec = None if deleted else CommunitySpec.model_validate(body.get("spec") or {})
        if state.communities.get(name) == spec:
            return False  # a resync, or a change of metadata only
        before = state.aliases()
        if spec is None:
            state.communities.pop(name, None)
        else:
            state.communities[name] = spec
        log.info("Community %s %s", name, "deleted" if spec is None else "in force")
        if state.aliases() == before:
            return False
        state.refresh_global()
        state.dirty_advertisements.update(
            key for key in state.advertisement_bodies if key[0] == "BGPAdvertisement"
        )
        return True
