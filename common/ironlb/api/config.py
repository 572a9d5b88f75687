"""IronLBConfig: the operator's own settings (how speakers run) and where it reports its state."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import DNS_LABEL_PATTERN, ApiModel, StatusBase, cel, validations

SINGLETON_NAME = "ironlb"


class Toleration(ApiModel):
    """A Kubernetes toleration for the speaker pods."""

    key: str | None = Field(default=None, max_length=317)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class SpeakerSettings(ApiModel):
    """How the speaker DaemonSet runs. Changes roll the speakers only where a restart is needed."""

    node_selector: dict[str, str] | None = Field(
        default=None, description="Only nodes with these labels run a speaker (plus kubernetes.io/os=linux)."
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=32,
        description="Tolerations of the speaker pods; by default they tolerate control-plane taints.",
    )
    cpu_request: str = Field(
        default="100m",  # 50m let heartbeats stall under a 5,000-IP bulk change (docs/benchmarks.md)
        max_length=16,
        pattern=r"^[0-9]+(\.[0-9]+)?m?$",
        description="The speakers' CPU request (also their budget for background work under a CPU limit).",
    )
    memory_request: str = Field(default="64Mi", max_length=16, pattern=r"^[0-9]+(Ki|Mi|Gi)?$")
    memory_limit: str = Field(default="256Mi", max_length=16, pattern=r"^[0-9]+(Ki|Mi|Gi)?$")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Picked up by running speakers without a restart."
    )
    gratuitous_refresh_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="Re-announce owned IPs (gratuitous ARP / unsolicited NA) this often, at most 100 IPs "
        "per second per node (with more IPs, less often); 0 turns it off. Picked up live.",
    )
    heartbeat_port: int = Field(
        default=7476,  # not 7946: MetalLB's memberlist port, so both can run side by side while migrating
        ge=1,
        le=65535,
        description="UDP port speakers use to watch each other (not MetalLB's memberlist port 7946, so both "
        "can run side by side while migrating); restarts speakers.",
    )
    metrics_port: int = Field(default=7473, ge=1, le=65535, description="Prometheus port; restarts speakers.")


class IronLBConfigSpec(ApiModel):
    """The operator's settings."""

    speaker: SpeakerSettings = Field(default_factory=SpeakerSettings)
    legacy_config_namespaces: list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)]] | None = (
        Field(
            default=None,
            max_length=16,
            description="Namespaces where MetalLB's legacy ConfigMap `config` is honoured besides IronLB's "
            "own (opt-in, e.g. [metallb-system] while migrating); it is read nowhere else, so whoever can "
            "create such a namespace does not control IronLB's addresses.",
        )
    )


class IronLBConfigStatus(StatusBase):
    """The operator's own state (conditions: Available, Progressing, Degraded) and the speakers'."""

    speaker_image: str = Field(
        default="", max_length=512, description="The speaker image the DaemonSet runs."
    )
    speakers_desired: int = Field(default=0, ge=0, description="Nodes that should run a speaker.")
    speakers_ready: int = Field(default=0, ge=0, description="Speakers that are ready.")
    speakers_updated: int = Field(default=0, ge=0, description="Speakers running the current pod template.")
    speakers: str = Field(default="", max_length=32, description="ready/desired, for kubectl get.")


SINGLETON_RULE = cel(
    f"self.metadata.name == '{SINGLETON_NAME}'",
    f"'there is one IronLBConfig per cluster and it is named {SINGLETON_NAME}, not ' + self.metadata.name",
)
ROOT_VALIDATIONS = validations(SINGLETON_RULE)
