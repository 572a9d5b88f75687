"""The speaker reads the settings file the operator writes (one model on both sides), live."""

from __future__ import annotations

from pathlib import Path

from ironlb.api.config import SpeakerSettings
from ironlb.operator.manifests import speaker_settings_configmap
from ironlb.speaker.settings import SettingsFile


def test_the_speaker_reads_what_the_operator_writes_and_keeps_the_last_good_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    written = SpeakerSettings(log_level="debug", heartbeat_port=17946, gratuitous_refresh_seconds=5)
    path.write_text(speaker_settings_configmap(written)["data"]["settings.json"])
    settings = SettingsFile(str(path))
    current = settings.current
    assert (current.log_level, current.heartbeat_port, current.gratuitous_refresh_seconds) == (
        "debug",
        17946,
        5,
    )
    assert not settings.reload(), "an unchanged file is not a change"

    path.write_text('{"logLevel": "loud"}')  # not a level: refused, the previous settings stay
    assert not settings.reload()
    assert settings.current.log_level == "debug"

    path.write_text(speaker_settings_configmap(SpeakerSettings(log_level="error"))["data"]["settings.json"])
    assert settings.reload()
    assert settings.current == SpeakerSettings(log_level="error")
    assert settings.current.heartbeat_port == 7476  # the default again: the operator's model decides it
