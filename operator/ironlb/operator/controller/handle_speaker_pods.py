"""Speaker pods: which node runs a ready speaker, for the metric an admin's alert watches.

A node that an advertisement selects but whose speaker is gone or not ready answers no ARP and opens no BGP
session; only the operator, which knows both the selection and the pods, can say so.
"""

from __future__ import annotations

from .state import Body, OperatorState


def pod_ready(body: Body) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class SpeakerPodHandler:
    def __init__(self, state: OperatorState) -> None:
        self.state = state

    def on_pod(self, body: Body, deleted: bool) -> None:
        name, node = body["metadata"]["name"], (body.get("spec") or {}).get("nodeName")
        before = self.state.speaker_pods.get(name)
        if deleted or not node or (body["metadata"].get("deletionTimestamp") is not None):
            self.state.speaker_pods.pop(name, None)
        else:
            self.state.speaker_pods[name] = (node, pod_ready(body))
        if self.state.speaker_pods.get(name) != before:
            self.state.show_speaker_readiness()
