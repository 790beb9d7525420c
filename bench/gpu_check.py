"""The GPU check: one table of what speechkd does on one NVIDIA GPU, in under 8 minutes, with no network.

    bash bench/gpu_check.sh                                   # on the GPU machine (see its header)
    HF_HUB_OFFLINE=1 python bench/gpu_check.py --device cpu --dry   # the same steps, tiny, on a CPU

Rows: pseudo-labelling throughput (bf16, batch 32) against the transformers ASR pipeline on the same FOTAQ
lines; a bf16 distillation of the default student (an audio-window student, `configs/demo-cpu.yaml`'s shape)
with steps/s and the loss at its start and end; evaluate at batch size 1 and 16 with the student as
speculative draft (0 mismatches expected); peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

from speechkd.manifest import read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", default="bundled:tiny.en", help="teacher REF or checkpoint dir")
    parser.add_argument(
        "--manifest", type=Path, default=None, help="FOTAQ lines (default: the prepared train split)"
    )
    parser.add_argument(
        "--eval-manifest", type=Path, default=None, help="held-out lines (default: dev split)"
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--lines", type=int, default=512, help="lines to pseudo-label (512)")
    parser.add_argument("--steps", type=int, default=60, help="distillation steps (60)")
    parser.add_argument("--eval-lines", type=int, default=64, help="held-out lines to evaluate (64)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/speechkd-gpu-check"), help="outputs")
    parser.add_argument("--dry", action="store_true", help="tiny sizes, float32: check the steps on a CPU")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.dry:
        args.lines, args.steps, args.eval_lines = (
            min(args.lines, 8),
            min(args.steps, 2),
            min(args.eval_lines, 4),
        )
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible (nvidia-smi?); use --device cpu --dry on a CPU")
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    train, dev = _inputs(args, work)
    rows = [_pseudo_label(args, train, work, dtype), _pipeline(args, train, dtype)]
    student = _create_student(args, work)
    rows.append(_distill(args, student, work))
    rows += _evaluate(args, work, dtype)
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        rows.append(
            (
                "peak GPU memory",
                f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB",
                "all steps, one process",
            )
        )
    print("\n| check | result | detail |\n|---|---|---|")
    for name, result, detail in rows:
        print(f"| {name} | {result} | {detail} |")
    (work / "gpu_check.json").write_text(json.dumps(rows, indent=2) + "\n")


def _inputs(args, work: Path) -> tuple[Path, Path]:
    data = Path(os.environ.get("SPEECHKD_HOME", Path.home() / ".cache" / "speechkd")) / "data" / "fotaq"
    train = read_manifest(args.manifest or data / "train.jsonl")[: args.lines]
    dev = read_manifest(args.eval_manifest or data / "dev.jsonl")[: args.eval_lines]
    write_manifest(work / "lines.jsonl", train)
    write_manifest(work / "dev.jsonl", dev)
    return work / "lines.jsonl", work / "dev.jsonl"


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def _pseudo_label(args, manifest: Path, work: Path, dtype: str):
    from speechkd.config import build_config
    from speechkd.pseudo_label import PseudoLabelConfig, pseudo_label

    values = {
        "teacher": args.teacher,
        "manifest": str(manifest),
        "output_dir": str(work / "pl"),
        "overwrite": True,
    }
    values |= {
        "dtype": dtype,
        "device": args.device,
        "batch_size": 32 if not args.dry else 4,
        "language": None,
    }
    summary = pseudo_label(build_config(PseudoLabelConfig, values, {}, "gpu_check"))
    detail = f"{summary['n_utterances']} lines, batch 32, {dtype}, kept {summary['n_kept']}"
    return ("pseudo-label RTFx (speechkd)", f"{summary['rtfx']:.1f}", detail)


def _pipeline(args, manifest: Path, dtype: str):
    import torch
    from transformers import pipeline

    from speechkd.audio import load_audio
    from speechkd.models import resolve_model

    audios = [load_audio(r["audio"]) for r in read_manifest(manifest)]
    asr = pipeline(
        "automatic-speech-recognition", model=resolve_model(args.teacher), device=args.device,
        dtype=getattr(torch, dtype),
    )  # fmt: skip
    _, seconds = _timed(asr, [{"raw": a, "sampling_rate": 16000} for a in audios], batch_size=32)
    audio = sum(len(a) for a in audios) / 16000
    return (
        "pseudo-label RTFx (transformers pipeline)",
        f"{audio / seconds:.1f}",
        "same lines, batch 32, greedy",
    )


def _create_student(args, work: Path) -> Path:
    from speechkd.config import build_config
    from speechkd.student import CreateStudentConfig, create_student

    recipe = yaml.safe_load((ROOT / "configs" / "demo-cpu.yaml").read_text())["create_student"]
    from speechkd.models import resolve_model

    teacher_layers = json.loads((Path(resolve_model(args.teacher)) / "config.json").read_text())[
        "decoder_layers"
    ]
    layers = min(recipe["decoder_layers"], teacher_layers)
    values = {"teacher": args.teacher, "output_dir": str(work / "student"), "decoder_layers": layers}
    create_student(
        build_config(
            CreateStudentConfig, values | {"encoder_window": recipe["encoder_window"], "overwrite": True}, {}
        )
    )
    return work / "student"


def _distill(args, student: Path, work: Path):
    from speechkd.config import build_config
    from speechkd.distill import DistillConfig, distill

    values = dict(
        teacher=args.teacher, student=str(student), train_manifest=str(work / "pl" / "train.jsonl"),
        output_dir=str(work / "distill"), freeze_encoder=False, batch_size=32 if not args.dry else 2,
        max_steps=args.steps, warmup_steps=max(1, args.steps // 10), learning_rate=1e-4, eval_steps=10**6,
        eval_at_start=False, device=args.device, overwrite=True, progress=False,
    )  # fmt: skip
    config = build_config(DistillConfig, values, {})
    summary, seconds = _timed(distill, config)
    losses = [
        json.loads(line)["loss"] for line in (work / "distill" / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [x for x in losses if x is not None]
    detail = (
        f"{args.steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else f"{args.steps} steps"
    )
    precision = "bf16" if args.device.startswith("cuda") else "fp32"
    return (f"distill steps/s ({precision}, window student)", f"{summary['steps'] / seconds:.2f}", detail)


def _evaluate(args, work: Path, dtype: str) -> list[tuple[str, str, str]]:
    from speechkd.config import build_config
    from speechkd.evaluate import EvaluateConfig, evaluate

    values = dict(
        model=str(work / "distill" / "final"), manifests=[str(work / "dev.jsonl")],
        output_dir=str(work / "evaluate"), baseline=args.teacher, assistant=str(work / "distill" / "final"),
        device=args.device, dtype=dtype, batch_size=16, latency_utterances=args.eval_lines, overwrite=True,
        progress=False,
    )  # fmt: skip
    metrics = evaluate(build_config(EvaluateConfig, values, {}))
    comparison, spec = metrics.get("comparison", {}), metrics.get("speculative", {})
    teacher = metrics["systems"]["baseline"]
    return [
        ("evaluate RTFx at batch 16 (student / teacher)", f"{metrics['rtfx']:.1f} / {teacher['rtfx']:.1f}",
         f"speed-up {comparison.get('speedup') or 0:.2f}x, WER {100 * (metrics['wer'] or 0):.1f} / "
         f"{100 * (teacher.get('wer') or 0):.1f} %"),
        ("latency p50 at batch 1 (student / teacher)",
         f"{1000 * (metrics['latency_p50'] or 0):.0f} / {1000 * (teacher.get('latency_p50') or 0):.0f} ms", ""),
        ("speculative decoding", f"{spec.get('speedup') or 0:.2f}x", f"{spec.get('speculative_mismatches', '?')} mismatches, "
         f"acceptance {100 * (spec.get('acceptance') or 0):.0f} %"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
