"""The speaker's settings file (the operator's ``ironlb-speaker-settings`` ConfigMap, mounted as a volume).

Kubernetes replaces a mounted ConfigMap's files in place when the ConfigMap changes, so the speaker re-reads
the file and applies the live settings (log level, refresh period) without a restart; the others are bound
at start (the operator rolls the DaemonSet when they change). The file is read with the operator's own
model (``IronLBConfig.spec.speaker``), so both sides share one definition and its defaults.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ironlb.api.config import SpeakerSettings
from pydantic import ValidationError

log = logging.getLogger("ironlb.speaker.settings")


class SettingsFile:
    """Reads the settings file when its content changes; a broken file keeps the last good settings."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._text: str | None = None
        self.current = SpeakerSettings()
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
            settings = SpeakerSettings.model_validate_json(text)
        except ValidationError as error:
            log.error("settings %s are invalid, keeping the previous ones: %s", self.path, error)
            return False
        changed = settings != self.current
        self.current = settings
        return changed


def apply_log_level(settings: SpeakerSettings) -> None:
    logging.getLogger().setLevel(settings.log_level.upper())
