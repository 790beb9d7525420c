"""The house rules (docs/architecture.md): layer contracts hold and no private name crosses a module boundary."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("speechkd"):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} {a.name}"
                for a in node.names
                if a.name.startswith("_")
            ]
    return found


def test_no_private_name_is_imported_across_modules():
    files = sorted((ROOT / "speechkd").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    offenders = [hit for path in files for hit in _private_imports(path) if not hit.endswith(" __version__")]
    assert not offenders, offenders
