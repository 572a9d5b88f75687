"""Whether the node's own link is up (sysfs carrier), with a hold-down after it comes back."""

from __future__ import annotations

from pathlib import Path


class LinkWatch:
    """Whether this node's own link can carry its announcements.

    With the link down the speaker owns nothing (its peers stop hearing it and take over). After the link
    comes back it waits one heartbeat timeout before claiming again, so it first hears that its peers are
    alive instead of claiming every IP it believed orphaned.
    """

    def __init__(self, interface: str, hold_down: float) -> None:
        self.carrier = Path(f"/sys/class/net/{interface}/carrier")
        self.hold_down = hold_down
        self.up_since: float | None = None
        self.started = True  # at start-up there is nothing to wait for

    def usable(self, now: float) -> bool:
        try:
            up = self.carrier.read_text().strip() == "1"
        except OSError:  # reading carrier fails while the interface is administratively down
            up = False
        if not up:
            self.up_since, self.started = None, False
            return False
        if self.up_since is None:
            self.up_since = now
        return self.started or now - self.up_since >= self.hold_down
