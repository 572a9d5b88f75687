"""Every figure in docs/benchmarks.md names the command that produces it: each command must exist and accept
the arguments the document gives it (a renamed module or a changed signature breaks this test, not a reader
months later)."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
COMMAND = re.compile(r"`(bash hack/[^`]+)`")
CONVERT = {"int": int, "float": float, "str": str}


def documented() -> list[list[str]]:
    return [shlex.split(match) for match in COMMAND.findall(DOC.read_text())]


def test_the_document_names_its_commands() -> None:
    modules = {tokens[2] for tokens in documented() if tokens[1] == "hack/bench/run.sh"}
    assert {"failover_bench", "flood_bench", "operator_bench", "speaker_rss_bench"} <= modules, modules
    assert any(tokens[1] == "hack/chaos.sh" for tokens in documented())


def test_each_bench_command_names_a_module_whose_main_takes_its_arguments() -> None:
    for tokens in documented():
        if tokens[1] != "hack/bench/run.sh":
            continue
        module, arguments = tokens[2], tokens[3:]
        assert (ROOT / "hack" / "bench" / f"{module}.py").is_file(), module
        main = importlib.import_module(f"bench.{module}").main
        parameters = list(inspect.signature(main).parameters.values())
        if not parameters:  # (bgp_bench reads its one optional argument itself)
            assert len(arguments) <= 1, tokens
            continue
        assert len(arguments) <= len(parameters), tokens
        for argument, parameter in zip(arguments, parameters, strict=False):
            CONVERT[str(parameter.annotation)](argument)  # raises on "20 6" given to an int, say


def test_the_chaos_command_knows_every_option_the_document_gives_it() -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "ironlb_lab.chaos", "--help"],
        cwd=ROOT / "hack",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for tokens in documented():
        if tokens[1] == "hack/chaos.sh":
            for option in (t for t in tokens if t.startswith("--")):
                assert option in usage, option
