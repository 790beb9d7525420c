"""Tests only: an untrained student of a real teacher, made the way users make one (`speechkd create-student`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def make_student(teacher: str, output_dir: Path, encoder_layers: int | None = None) -> Path:
    """A 2-decoder-layer student of TEACHER (teacher layers first and last); fewer encoder layers if asked."""
    if (output_dir / "config.json").exists():
        return output_dir
    command = [sys.executable, "-m", "speechkd.cli", "create-student", "--teacher", str(teacher)]
    command += ["--decoder-layers", "2", "--output-dir", str(output_dir)]
    if encoder_layers is not None:
        command += ["--encoder-layers", str(encoder_layers)]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"create-student failed:\n{result.stderr}")
    return output_dir
