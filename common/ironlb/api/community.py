"""Community: names for BGP communities (MetalLB's aliases), usable in BGPAdvertisements' ``communities``.

An advertisement naming an alias that no Community in IronLB's namespace defines is not in force: it would
otherwise announce routes without a community its admin asked for (``no-export`` missing leaks a route).
The operator says so with a Warning event on the advertisement and its Ready condition.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .advertisements import ALIAS_PATTERN, IS_WELL_KNOWN, Community
from .common import ApiModel, StatusBase, cel, validations

AliasName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=ALIAS_PATTERN,
        json_schema_extra=validations(
            cel(
                f"!({IS_WELL_KNOWN})",
                "'\"' + self + '\" is a well-known community already: an alias may not redefine it'",
            )
        ),
    ),
]


class CommunityAlias(ApiModel):
    """One alias: the name advertisements use, and the community it stands for."""

    name: AliasName = Field(description="The alias, as written in BGPAdvertisements' communities.")
    value: Community = Field(
        description="ASN:VALUE (each 0-65535), large:GLOBAL:DATA1:DATA2 (each 0-4294967295) or a well-known "
        "name."
    )


class CommunitySpec(ApiModel):
    """Aliases for BGP communities; across Community objects, the one whose object name sorts first wins."""

    communities: list[CommunityAlias] | None = Field(
        default=None,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="The aliases; each name once.",
    )


class CommunityStatus(StatusBase):
    """Nothing is written here: advertisements naming an unknown alias say so in their own status."""
