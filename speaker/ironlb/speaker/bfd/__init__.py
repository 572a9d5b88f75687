"""BFD (RFC 5880/5881/5883) for the speaker: a pure session state machine, the control packet codec and a
thin UDP transport, so a BGP peer's loss is detected in under a second instead of a hold time.

Written here because PyPI has no BFD implementation; interoperability is checked against BIRD2.
"""
