"""Who announces what, reported by IronLB in objects of its own (MetalLB's ServiceL2Status idea), so the
speakers never write users' Services.

One object per (Service, IP) in Layer 2 mode, in IronLB's namespace: the node answering ARP/NDP for the IP
writes it when it takes the IP over (a takeover rewrites the same object), deletes it when it lets the IP
go, and the operator removes those of Services that are gone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import ApiModel


class ServiceL2StatusSpec(ApiModel):
    """Empty: everything is status, written by IronLB."""


class ServiceL2StatusStatus(ApiModel):
    """The node answering for one IP of one Service."""

    service_namespace: str = Field(default="", max_length=63, description="The Service's namespace.")
    service_name: str = Field(default="", max_length=63, description="The Service's name.")
    ip: str = Field(default="", max_length=45, description="The Service IP this node answers ARP/NDP for.")
    node: str = Field(default="", max_length=253, description="The node answering for it.")
    mode: Literal["Layer2", "BGP"] = Field(default="Layer2", description="How the IP is announced.")
    interfaces: list[str] = Field(
        default_factory=list, max_length=32, description="The node's interfaces answering for it."
    )
