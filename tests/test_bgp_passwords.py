"""BGP passwords gathered by the operator into the one Secret the speakers may read (issue 13)."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from ironlb.api import BGPPeerSpec
from ironlb.api.contract import PASSWORDS_SECRET
from ironlb.operator.passwords import gather, passwords_secret
from ironlb.operator.speakerconfig import session_from_peer

NS = "ironlb-system"


def _peer(secret: dict[str, str] | None = None) -> BGPPeerSpec:
    spec = {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1"}
    if secret is not None:
        spec["passwordSecret"] = secret
    return BGPPeerSpec.model_validate(spec)


def _encoded(password: str) -> str:
    return base64.b64encode(password.encode()).decode()


def test_each_peer_gets_the_password_of_the_secret_it_names_and_nothing_else() -> None:
    peers = {
        "signed": _peer({"name": "md5"}),
        "plain": _peer(),
        "elsewhere": _peer({"name": "md5", "namespace": "team-a"}),  # refused at admission; never read
        "missing": _peer({"name": "no-such-secret"}),
        "no-key": _peer({"name": "other"}),
    }
    secrets = {"md5": {"password": _encoded("s3cret")}, "other": {"username": _encoded("bgp")}}
    assert gather(peers, NS, secrets) == {"signed": _encoded("s3cret")}


def test_an_inline_password_is_gathered_like_a_secret_and_the_speaker_pointed_at_it() -> None:
    inline = BGPPeerSpec.model_validate(
        {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1", "password": 'p";{w}'}
    )
    assert gather({"inline": inline}, NS, {}) == {"inline": _encoded('p";{w}')}
    session = session_from_peer("inline", NS, inline)
    assert session.password_secret is not None and session.password_secret.key == "inline"


def test_the_speakers_are_pointed_at_the_gathered_secret_by_peer_name() -> None:
    session = session_from_peer("signed", NS, _peer({"name": "md5"}))
    assert session.password_secret is not None
    assert (session.password_secret.namespace, session.password_secret.name) == (NS, PASSWORDS_SECRET)
    assert session.password_secret.key == "signed"
    assert session_from_peer("plain", NS, _peer()).password_secret is None


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?", fullmatch=True), st.text(min_size=1), max_size=5
    )
)
def test_the_gathered_secret_carries_exactly_the_passwords(passwords: dict[str, str]) -> None:
    peers = {name: _peer({"name": f"s-{name}"}) for name in passwords}
    secrets = {f"s-{name}": {"password": _encoded(value)} for name, value in passwords.items()}
    manifest = passwords_secret(gather(peers, NS, secrets), NS)
    assert manifest["metadata"]["name"] == PASSWORDS_SECRET
    decoded = {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()}
    assert decoded == passwords


def test_an_empty_inline_password_is_no_password() -> None:
    """MetalLB (and templated manifests) write password: "" for none: the session opens without MD5."""
    empty = BGPPeerSpec.model_validate(
        {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1", "password": ""}
    )
    assert gather({"empty": empty}, NS, {}) == {}
    assert session_from_peer("empty", NS, empty).password_secret is None
