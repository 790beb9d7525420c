"""The recipe configs and stage scripts: valid configs, valid commands, and the whole pipeline end to end."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from speechkd.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def run_script(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(["bash", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=1800)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_recipe_config_is_valid_for_its_stages(config):
    parser = build_parser()
    args = parser.parse_args(["config", "check", str(config)])
    assert args.handler(args) == 0


def test_an_unknown_option_in_a_config_is_rejected(tmp_path):
    from speechkd.config import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("distill:\n  learning_rat: 0.001\n")
    args = build_parser().parse_args(["config", "check", str(bad)])
    with pytest.raises(ConfigError, match="learning_rat"):
        args.handler(args)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_dry_run_prints_commands_the_cli_accepts(config):
    result = run_script("scripts/run.sh", "--config", str(config.relative_to(REPO)), "--dry-run")
    commands = [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]
    stages = {"data", "pseudo-label", "create-student", "distill", "evaluate"}
    seen = set()
    for argv in commands:
        if argv[0] == "cp":
            continue
        if argv[0] == "accelerate":  # the GPU recipe's launcher: accelerate launch ... -m speechkd.cli
            argv = argv[argv.index("speechkd.cli") + 1 :]
        else:
            assert argv[0] == "speechkd", argv
            argv = argv[1:]
        build_parser().parse_args(argv)  # exits (SystemExit) on any flag the CLI does not know
        seen.add(argv[0])
    assert seen == stages


def test_run_sh_help_lists_every_stage():
    result = run_script("scripts/run.sh", "--help")
    for word in ("pseudo-label", "create student", "distill", "evaluate", "--stop-stage", "--dry-run"):
        assert word in result.stdout


@pytest.mark.slow
def test_demo_tiny_runs_every_stage_and_resumes(tmp_path, fotaq_dir):
    work = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", work / "scripts")
    shutil.copytree(REPO / "configs", work / "configs")
    (work / "data").mkdir()
    (work / "data" / "fotaq").symlink_to(fotaq_dir)

    run_script("scripts/run.sh", "--config", "configs/demo-tiny.yaml", "--stop-stage", "3", cwd=work)
    run_dir = work / "runs" / "demo-tiny"
    assert len((run_dir / "data" / "utterances.jsonl").read_text().splitlines()) == 12
    clips = [json.loads(line) for line in (run_dir / "data" / "pseudo_label_input.jsonl").open()]
    packed = [c for c in clips if "parts" in c]
    assert sum(len(c["parts"]) for c in packed) == 12 and len(packed) < 12  # packed into clips of <= 20 s
    assert len(clips) - len(packed) == 2  # unpacked_n: 2 single lines besides
    n = len(clips)
    summary = json.loads((run_dir / "pseudo_label" / "summary.json").read_text())
    assert summary["finished"] and summary["n_utterances"] == n
    assert (run_dir / "pseudo_label" / "train.jsonl").exists()
    provenance = json.loads((run_dir / "student_init" / "speechkd.json").read_text())
    assert provenance["teacher"] == "bundled:tiny.en"
    assert len(list((run_dir / "cache").glob("encoder-*/*.pt"))) == n  # the teacher's, kept for distill

    result = run_script("scripts/run.sh", "--config", "configs/demo-tiny.yaml", "--stage", "2", cwd=work)
    assert "already" in result.stderr  # finished stages are skipped, not redone
    for artefact in (
        "distill/final/config.json",
        "distill/draft/config.json",
        "evaluate/metrics.json",
        "report.md",
    ):
        assert (run_dir / artefact).exists(), artefact
    folders = list((run_dir / "cache").glob("encoder-*"))
    assert len(folders) == 1 and len(list(folders[0].glob("*.pt"))) == n + 6  # distill added the eval lines
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["n_utterances"] == 6
    assert metrics["speculative"] and metrics["comparison"]
    assert "speed-up" in result.stdout  # run.sh ends by printing the report's table
    report = (run_dir / "report.md").read_text()
    for plot in ("evaluate/wer_vs_rtfx.png", "distill/loss.png", "distill/wer.png"):
        assert f"]({plot})" in report and (run_dir / plot).exists(), plot
