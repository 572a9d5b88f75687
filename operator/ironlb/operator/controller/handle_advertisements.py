"""L2/BGP advertisements, BGPPeers and Nodes in; the speakers' global configuration and advertisement status
out. Node labels and addresses matter only through the selectors of advertisements and peers."""

from __future__ import annotations

import asyncio
import logging

from ironlb.api import GROUP, VERSION, BGPAdvertisementSpec, BGPPeerSpec, L2AdvertisementSpec
from ironlb.api.contract import PASSWORDS_SECRET
from ironlb.api.events import ObjectRef
from ironlb.api.kube import ApiError, custom_path

from ..conditions import now
from ..passwords import gather, passwords_secret
from ..poolstatus import advertisement_status
from ..speakerconfig import apply_aliases
from .state import Body, OperatorState

log = logging.getLogger("ironlb.operator")


class AdvertisementHandler:
    def __init__(self, state: OperatorState) -> None:
        self.state = state
        self._password_error = ""

    def set_advertisement(self, body: Body, deleted: bool) -> None:
        state, key = self.state, (body["kind"], body["metadata"]["name"])
        if deleted:
            state.advertisements.pop(key, None)
            state.advertisement_bodies.pop(key, None)
            return
        state.advertisement_bodies[key] = body
        state.dirty_advertisements.add(key)
        model = L2AdvertisementSpec if body["kind"] == "L2Advertisement" else BGPAdvertisementSpec
        state.advertisements[key] = model.model_validate(body.get("spec") or {})

    def on_advertisement(self, body: Body, deleted: bool) -> bool:
        """True when what it advertises changed (not only its status)."""
        state = self.state
        if body["metadata"].get("namespace") != state.namespace:
            return False
        key = (body["kind"], body["metadata"]["name"])
        previous = state.advertisement_bodies.get(key)
        if not deleted and previous is not None and previous.get("spec") == body.get("spec"):
            state.advertisement_bodies[key] = body  # our own status write
            return False
        self.set_advertisement(body, deleted)
        state.refresh_global()
        return True

    def set_peer(self, body: Body, deleted: bool) -> None:
        if body["metadata"].get("namespace") != self.state.namespace:
            return
        name = body["metadata"]["name"]
        if deleted:
            self.state.peers.pop(name, None)
            ref = self.state.peer_refs.pop(name, None)
            if ref is not None:  # a new peer of that name is told everything again
                self.state.events.forget(ref)
        else:
            self.state.peers[name] = BGPPeerSpec.model_validate(body.get("spec") or {})
            self.state.peer_refs[name] = ObjectRef.of(body)
        self.state.refresh_global()

    def on_secret(self, body: Body, deleted: bool) -> None:
        """A Secret of our namespace: it may hold a BGPPeer's password (gathered at the next flush)."""
        name = body["metadata"]["name"]
        if name == PASSWORDS_SECRET:
            return
        if deleted:
            self.state.secrets.pop(name, None)
        else:
            self.state.secrets[name] = dict(body.get("data") or {})

    async def flush_passwords(self) -> None:
        """Write the speakers' passwords Secret when what it should hold changed (server-side apply)."""
        state = self.state
        data = gather(state.all_peers(), state.namespace, state.secrets)
        if data == state.passwords_written:
            return
        path = f"/api/v1/namespaces/{state.namespace}/secrets/{PASSWORDS_SECRET}"
        try:
            await asyncio.to_thread(state.kube.apply, path, passwords_secret(data, state.namespace))
        except ApiError as error:  # retried at the next flush; said once per kind of error (never the data)
            if str(error) != self._password_error:
                log.warning("Secret %s: %s", PASSWORDS_SECRET, error)
            self._password_error = str(error)
            return
        self._password_error = ""
        state.passwords_written = data
        log.info("Secret %s holds the passwords of %d BGPPeers", PASSWORDS_SECRET, len(data))

    def remember_node(self, body: Body) -> bool:
        """Cache a node's labels and InternalIP; True when either changed."""
        state, name = self.state, body["metadata"]["name"]
        labels = dict(body["metadata"].get("labels") or {})
        addresses = (body.get("status") or {}).get("addresses") or []
        address = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), None)
        changed = state.node_labels.get(name) != labels or state.node_addresses.get(name) != address
        state.node_labels[name] = labels
        if address is None:
            state.node_addresses.pop(name, None)
        else:
            state.node_addresses[name] = address
        return changed

    def on_node(self, body: Body, deleted: bool) -> None:
        name = body["metadata"]["name"]
        if deleted:
            self.state.node_labels.pop(name, None)
            self.state.node_addresses.pop(name, None)
        elif not self.remember_node(body):
            return
        self.state.refresh_global()

    async def flush_statuses(self) -> None:
        """Say on each advertisement whether the pools and community aliases it names exist (only when that
        changed)."""
        state = self.state
        dirty, state.dirty_advertisements = state.dirty_advertisements, set()
        aliases = state.aliases()
        for key in sorted(dirty):
            body, spec = state.advertisement_bodies.get(key), state.advertisements.get(key)
            if body is None or spec is None:
                continue
            missing = [
                name
                for name in spec.ip_address_pools or []
                if name not in state.pools and name not in state.legacy.pools
            ]
            unknown: tuple[str, ...] = ()
            if isinstance(spec, BGPAdvertisementSpec):
                unknown = apply_aliases(spec.communities, aliases)[1]
            previous = (body.get("status") or {}).get("conditions") or []
            generation = body["metadata"].get("generation")
            status = advertisement_status(missing, previous, generation, now(), unknown)
            if previous and [(c["status"], c["message"]) for c in previous] == [
                (c["status"], c["message"]) for c in status["conditions"]
            ]:
                continue
            ready = status["conditions"][0]
            if ready["reason"] in ("PoolsMissing", "CommunityNotFound"):
                state.events.once(ObjectRef.of(body), "ready", "Warning", ready["reason"], ready["message"])
            plural = "l2advertisements" if key[0] == "L2Advertisement" else "bgpadvertisements"
            try:
                await asyncio.to_thread(
                    state.kube.merge_patch,
                    custom_path(GROUP, VERSION, state.namespace, plural, key[1], "status"),
                    {"status": status},
                )
            except ApiError as error:
                if error.status != 404:
                    log.warning("%s %s status: %s", key[0], key[1], error)
                    state.dirty_advertisements.add(key)
