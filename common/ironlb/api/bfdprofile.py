"""BFDProfile: the BFD timers a BGPPeer names in ``bfdProfile`` (MetalLB's field names and defaults).

A BGP session whose peer names a profile gets a BFD session (RFC 5880; single hop RFC 5881, multihop RFC 5883
for ``ebgpMultiHop`` peers) from the same local address; when BFD goes Down after having been Up, the BGP
session is closed at once and stays closed until BFD is Up again, as FRR does for MetalLB. Echo mode is
not implemented, so the two echo fields are refused rather than accepted and ignored.
"""

from __future__ import annotations

from pydantic import Field

from .common import ApiModel, StatusBase, cel, validations

INTERVAL_MIN_MS, INTERVAL_MAX_MS = 10, 60_000
# no apostrophe: it goes into CEL string literals
NO_ECHO = (
    "echo mode is not implemented by IronLB (its BFD advertises a Required Min Echo RX Interval of 0, so no"
    " peer sends it echo packets)"
)


def _interval(what: str) -> str:
    return f"{what}, in milliseconds: {INTERVAL_MIN_MS}-{INTERVAL_MAX_MS}, default 300 (as MetalLB and FRR)."


class BFDProfileSpec(ApiModel):
    """BFD timers and roles shared by the BGPPeers that name this profile."""

    receive_interval: int = Field(
        default=300,
        ge=INTERVAL_MIN_MS,
        le=INTERVAL_MAX_MS,
        description=_interval("The minimum interval at which this node can receive control packets"),
    )
    transmit_interval: int = Field(
        default=300,
        ge=INTERVAL_MIN_MS,
        le=INTERVAL_MAX_MS,
        description=_interval("The minimum interval at which this node wants to send control packets"),
    )
    detect_multiplier: int = Field(
        default=3,
        ge=2,
        le=255,
        description="Packets that may be missed in a row: the peer is declared down after this many of its "
        "intervals without a packet. 2-255, default 3.",
    )
    echo_interval: int | None = Field(
        default=None,
        ge=INTERVAL_MIN_MS,
        le=INTERVAL_MAX_MS,
        json_schema_extra=validations(
            # no value in the message: the API server estimates string(int) as unbounded and refuses it
            cel("false", f"'echoInterval is refused whatever its value: {NO_ECHO}; leave echoInterval out'")
        ),
        description=f"Refused when set: {NO_ECHO}. MetalLB's field.",
    )
    echo_mode: bool = Field(
        default=False,
        json_schema_extra=validations(
            cel("!self", f"'echoMode true is refused: {NO_ECHO}; leave echoMode out or set it to false'")
        ),
        description=f"Only false is accepted: {NO_ECHO}.",
    )
    passive_mode: bool = Field(
        default=False,
        description="Send no control packet until the peer has sent one (the peer starts the session).",
    )
    minimum_ttl: int = Field(
        default=254,
        alias="minimumTtl",
        ge=1,
        le=254,
        description="Multihop sessions only (BGPPeers with ebgpMultiHop): control packets arriving with a "
        "lower TTL are dropped. 1-254, default 254. Single-hop sessions always require 255 (RFC 5881).",
    )


class BFDProfileStatus(StatusBase):
    """Nothing is written here: the status.nodes of each BGPPeer naming the profile shows its BFD sessions."""
