"""Render exabgp's configuration file from the contract (jinja2, strict: a missing value is an error)."""

from __future__ import annotations

import ipaddress
import re

import jinja2
from ironlb.api.contract import ExabgpConfig

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("ironlb.speaker.bgp", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:/ -]*$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")  # the MD5 key as exabgp reads it (md5-base64)


def _check(config: ExabgpConfig) -> None:
    """Values are interpolated into exabgp's grammar: refuse anything that could change its structure."""
    for neighbor in config.neighbors:
        session = neighbor.session
        for address in (session.peer_address, neighbor.local_address, neighbor.router_id):
            ipaddress.ip_address(address)
        if not _SAFE_TEXT.match(session.name):
            raise ValueError(f"BGPPeer name {session.name!r} cannot be written into exabgp's configuration")
        if neighbor.password is not None and not _BASE64.match(neighbor.password.get_secret_value()):
            raise ValueError(f"the MD5 key of BGPPeer {session.name} is not base64 (md5.md5_key makes it)")
    if "\n" in config.api_command or ";" in config.api_command:
        raise ValueError("the API command must be a single command line")


# How long a router keeps our routes while a speaker restarts (the common default of FRR and BIRD).
GRACEFUL_RESTART_SECONDS = 120


def render_exabgp(config: ExabgpConfig) -> str:
    _check(config)
    return _ENVIRONMENT.get_template("exabgp.conf.j2").render(
        config=config, graceful_restart_seconds=GRACEFUL_RESTART_SECONDS
    )
