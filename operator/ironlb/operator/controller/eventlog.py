"""Events from the reconcilers, de-duplicated per object and topic, so a resync never floods an object."""

from __future__ import annotations

import logging

from ironlb.api.events import EventSink, ObjectRef

log = logging.getLogger("ironlb.operator")


class EventLog:
    def __init__(self, post: EventSink) -> None:
        self._post = post
        self._last: dict[str, dict[str, tuple[str, str]]] = {}  # object -> topic -> (reason, message)

    def event(self, obj: ObjectRef, kind: str, reason: str, message: str) -> None:
        try:
            self._post(obj, kind, reason, message)
        except Exception as error:  # an event must never break reconciliation
            log.warning("event %s on %s: %s", reason, obj.key, error)

    def once(self, obj: ObjectRef, topic: str, kind: str, reason: str, message: str) -> None:
        """Post an event unless the same one was the last posted on this topic (no storms on resync)."""
        posted = self._last.setdefault(obj.key, {})
        if posted.get(topic) == (reason, message):
            return
        posted[topic] = (reason, message)
        self.event(obj, kind, reason, message)

    def forget_topic(self, obj: ObjectRef, topic: str) -> None:
        """The condition behind this topic ended: the next occurrence is told again."""
        self._last.get(obj.key, {}).pop(topic, None)

    def forget(self, obj: ObjectRef) -> None:
        """The object is gone, or is a new one: forget everything told about it."""
        self._last.pop(obj.key, None)
