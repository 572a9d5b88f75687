"""Run one of hack/'s build scripts (cached builds from the Go module proxy) and return the directory it
prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

HACK = Path(__file__).resolve().parents[1]


def built(script: str) -> Path:
    result = subprocess.run(["bash", str(HACK / script)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"hack/{script} failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip())
