"""The speaker's settings file (the operator's ``ironlb-speaker-settings`` ConfigMap, mounted as a volume).

Kubernetes replaces a mounted ConfigMap's files in place when the ConfigMap changes, so the speaker re-reads
the file and applies the live settings (log level, refresh period) without a restart; the others are bound
at start (the operator rolls the DaemonSet when they change).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("ironlb.speaker.settings")


class SpeakerRuntimeSettings(BaseModel):
    """The fields of IronLBConfig.spec.speaker a speaker process uses (extra keys are ignored)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    log_level: str = Field(default="info", alias="logLevel")
    gratuitous_refresh_seconds: int = Field(default=30, ge=0, alias="gratuitousRefreshSeconds")
    heartbeat_port: int = Field(default=7946, ge=1, le=65535, alias="heartbeatPort")
    metrics_port: int = Field(default=7473, ge=1, le=65535, alias="metricsPort")


class SettingsFile:
    """Reads the settings file when its content changes; a broken file keeps the last good settings."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._text: str | None = None
        self.current = SpeakerRuntimeSettings()
        self.reload()

    def reload(self) -> bool:
        """Re-read; True when the settings changed."""
        if self.path is None:
            return False
        try:
            text = self.path.read_text()
        except OSError as error:
            log.warning("cannot read settings %s: %s", self.path, error)
            return False
        if text == self._text:
            return False
        self._text = text
        try:
            settings = SpeakerRuntimeSettings.model_validate_json(text)
        except ValidationError as error:
            log.error("settings %s are invalid, keeping the previous ones: %s", self.path, error)
            return False
        changed = settings != self.current
        self.current = settings
        return changed


def apply_log_level(settings: SpeakerRuntimeSettings) -> None:
    logging.getLogger().setLevel(settings.log_level.upper())
