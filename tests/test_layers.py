"""Three layers: ``ironlb.api`` (common/) is what operator and speaker share; neither imports the other.

The import graph is read from the source with ``ast`` (every import statement, also those inside functions),
so a forbidden import fails here even on a code path no other test runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "ironlb.api": REPO_ROOT / "common/ironlb/api",
    "ironlb.operator": REPO_ROOT / "operator/ironlb/operator",
    "ironlb.speaker": REPO_ROOT / "speaker/ironlb/speaker",
}
# what each layer may import of IronLB
ALLOWED = {
    "ironlb.api": {"ironlb.api"},
    "ironlb.operator": {"ironlb.api", "ironlb.operator"},
    "ironlb.speaker": {"ironlb.api", "ironlb.speaker"},
}


def module_name(package: str, root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def imported_modules(package: str, root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    here = module_name(package, root, path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
                continue
            base = here.split(".")
            drop = node.level - (1 if is_package else 0)
            anchor = base[: len(base) - drop] if drop else base
            yield node.lineno, ".".join([*anchor, *([node.module] if node.module else [])])


def layer_of(module: str) -> str | None:
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None)


def all_imports() -> Iterator[tuple[str, Path, int, str]]:
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            for line, module in imported_modules(package, root, path):
                yield package, path, line, module


def test_each_layer_imports_only_what_it_stands_on() -> None:
    wrong = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {module}"
        for package, path, line, module in all_imports()
        if ((target := layer_of(module)) is not None and target not in ALLOWED[package])
        or module.startswith("ironlb_lab")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_imports_between_layers_and_relative_ones(tmp_path: Path) -> None:
    """The checker itself: a relative import that climbs out of a package resolves to the right module."""
    root = tmp_path / "speaker"
    (root / "l2").mkdir(parents=True)
    source = root / "l2" / "agent.py"
    source.write_text(
        "from ..state import State\nfrom .link import LinkWatch\nimport ironlb.operator.kube\n"
        "def late():\n    from ironlb.operator import controller\n"
    )
    found = [module for _, module in imported_modules("ironlb.speaker", root, source)]
    assert found == [
        "ironlb.speaker.state",
        "ironlb.speaker.l2.link",
        "ironlb.operator.kube",
        "ironlb.operator",
    ]
    layers = [layer_of(m) for m in found]
    assert layers == ["ironlb.speaker", "ironlb.speaker", "ironlb.operator", "ironlb.operator"]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_layer_has_its_own_folder(package: str) -> None:
    assert (PACKAGES[package] / "__init__.py").exists()


def test_lab_code_does_not_ship_in_the_product() -> None:
    """Lab tools live under hack/: nothing in the three packages says it is for the lab only."""
    shipped = [p for root in PACKAGES.values() for p in root.rglob("*.py") if "harness" in p.name]
    assert not shipped, shipped
