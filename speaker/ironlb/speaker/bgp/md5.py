"""A BGPPeer's TCP MD5 key, from the base64 the API stores to the base64 exabgp reads (``md5-base64 true``).

The key is never decoded into text: any byte is allowed (quotes, semicolons, braces, bytes that are not
UTF-8), and only base64's alphabet is ever written into exabgp's configuration, so no password can change its
structure. A key the kernel cannot take closes its own session only, with a reason that never quotes it.
"""

from __future__ import annotations

import base64
import binascii

MAX_KEY_BYTES = 80  # TCP_MD5SIG_MAXKEYLEN


def md5_key(encoded: str) -> tuple[str | None, str | None]:
    """(key as base64, None) or (None, why it cannot be used). A trailing line break is dropped:
    ``echo pw | base64`` adds one, and no router's key ends with one."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, "the password is not valid base64 in the Secret"
    key = raw.rstrip(b"\r\n")
    if not key:
        return None, "the password is empty"
    if len(key) > MAX_KEY_BYTES:
        return None, f"the password is {len(key)} bytes long; TCP MD5 keys hold at most {MAX_KEY_BYTES}"
    return base64.b64encode(key).decode("ascii"), None
