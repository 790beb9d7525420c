"""`speechkd distill --teacher REF --student DIR --train-manifest M --eval-manifest M --output-dir DIR`: stage 3."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from speechkd.commands import quiet_transformers

BOOL = argparse.BooleanOptionalAction


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="train the student on the teacher's pseudo-labels (CE + KL)",
        description=(
            "Distil the teacher into the student: loss = ce_weight*CE(pseudo-labels) + kl_weight*T^2*KL(teacher "
            "|| student). With the encoder frozen (default) its output is computed once per utterance and "
            "cached, and the teacher reuses it, so steps run decoders only. Writes checkpoints/, best/, final/, "
            "draft/ (decoder-only WhisperForCausalLM for speculative decoding), metrics.jsonl, metrics.json, "
            "loss.png and wer.png into --output-dir. Runs under `accelerate launch` unchanged."
        ),
    )
    flag = parser.add_argument
    flag("--config", type=Path, default=None, help="YAML/JSON file; section `distill` (flags win)")
    flag("--teacher", default=None, help="local dir, hub id, or bundled alias (the teacher)")
    flag("--student", default=None, help="student checkpoint directory (from `speechkd create-student`)")
    flag(
        "--train-manifest",
        default=None,
        help="JSONL manifest with pseudo-labels (pseudo-label's train.jsonl)",
    )
    flag("--eval-manifest", default=None, help="JSONL manifest with `text`, scored by normalised WER")
    flag("--output-dir", default=None, help="where checkpoints, students and metrics go")

    data = parser.add_argument_group("data")
    data.add_argument("--label-field", default=None, help="manifest field holding the label (teacher_text)")
    data.add_argument("--language", default=None, help="label language for multilingual models, e.g. en")
    data.add_argument("--task", default=None, choices=["transcribe", "translate"], help="(transcribe)")
    data.add_argument(
        "--timestamp-probability",
        type=float,
        default=None,
        help="keep labels' timestamps with this probability (0.2)",
    )
    data.add_argument(
        "--prompt-probability",
        type=float,
        default=None,
        help=(
            "prompt a row with the text of the clip its `previous` field names (speechkd data pack writes it) "
            "this often (0.2), so the student follows Whisper's previous-text conditioning when streaming or "
            "transcribing long audio; prompts carry no loss and the teacher sees them too"
        ),
    )
    data.add_argument(
        "--prompt-max-tokens",
        type=int,
        default=None,
        help="longest prompt, <|startofprev|> included, keeping its end (224; streaming's 200 characters ~50)",
    )

    loss = parser.add_argument_group("loss")
    loss.add_argument("--ce-weight", type=float, default=None, help="weight of CE on pseudo-labels (0.8)")
    loss.add_argument("--kl-weight", type=float, default=None, help="weight of T^2*KL to the teacher (1.0)")
    loss.add_argument("--temperature", type=float, default=None, help="KL softmax temperature T (2.0)")
    loss.add_argument("--mse-weight", type=float, default=None, help="hidden-state matching weight (0: off)")

    train = parser.add_argument_group("optimisation")
    train.add_argument("--learning-rate", type=float, default=None, help="peak AdamW learning rate (1e-4)")
    train.add_argument(
        "--weight-decay", type=float, default=None, help="AdamW decay, not on norms/biases (0)"
    )
    train.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (50)")
    train.add_argument(
        "--lr-schedule", default=None, choices=["linear", "constant"], help="after warm-up (linear)"
    )
    train.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping (1.0; 0: off)")
    train.add_argument("--batch-size", type=int, default=None, help="utterances per step and process (16)")
    train.add_argument(
        "--gradient-accumulation-steps", type=int, default=None, help="micro-batches a step (1)"
    )
    train.add_argument("--max-steps", type=int, default=None, help="optimizer steps (wins over --epochs)")
    train.add_argument("--epochs", type=float, default=None, help="passes over the training set (3)")
    train.add_argument(
        "--mixed-precision", default=None, choices=["no", "bf16", "fp16"], help="(bf16 on GPU)"
    )
    train.add_argument("--gradient-checkpointing", action=BOOL, default=None, help="trade compute for memory")
    train.add_argument("--freeze-encoder", action=BOOL, default=None, help="keep the encoder frozen (on)")
    train.add_argument(
        "--freeze-embed-positions", action=BOOL, default=None, help="freeze decoder positions (on)"
    )
    train.add_argument(
        "--freeze-embed-tokens",
        action=BOOL,
        default=None,
        help="freeze token embeddings = output projection (off)",
    )
    train.add_argument("--seed", type=int, default=None, help="data order, timestamp draws, init (0)")

    cache = parser.add_argument_group("caches")
    cache.add_argument(
        "--encoder-cache",
        default=None,
        choices=["disk", "memory", "none"],
        help="frozen encoder output (disk)",
    )
    cache.add_argument(
        "--teacher-topk", type=int, default=None, help="cache the teacher's top-k log-probs (0: off)"
    )
    cache.add_argument(
        "--encoder-cache-dir",
        default=None,
        help="encoder cache folder (OUTPUT_DIR/cache), shareable across runs and with `pseudo-label "
        "--encoder-cache-dir`",
    )
    cache.add_argument("--cache-dir", dest="cache_dir", default=None, help="deprecated: --encoder-cache-dir")

    run = parser.add_argument_group("evaluation, logging and checkpoints")
    run.add_argument("--eval-steps", type=int, default=None, help="evaluate every N steps (200)")
    run.add_argument("--eval-batch-size", type=int, default=None, help="decoding batch size (16)")
    run.add_argument("--eval-max-utterances", type=int, default=None, help="score the first N eval rows only")
    run.add_argument(
        "--eval-at-start", action=BOOL, default=None, help="score untrained student + teacher (on)"
    )
    run.add_argument("--log-steps", type=int, default=None, help="log training metrics every N steps (10)")
    run.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps (= eval steps)")
    run.add_argument("--keep-checkpoints", type=int, default=None, help="checkpoints kept (2)")
    run.add_argument(
        "--device", default=None, help="cpu, cuda ... (single process; accelerate picks otherwise)"
    )
    run.add_argument("--num-workers", type=int, default=None, help="data-loader worker processes (0)")
    run.add_argument("--resume", action="store_true", default=None, help="continue from the last checkpoint")
    run.add_argument(
        "--overwrite", action="store_true", default=None, help="discard an earlier run in OUTPUT_DIR"
    )
    run.add_argument("--stop-after", type=int, default=None, help="stop after step N, keeping its checkpoint")
    run.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from speechkd.config import build_config, load_config_file
    from speechkd.distill.config import DistillConfig, check_inputs

    file_values = load_config_file(args.config, "distill") if args.config else {}
    source = f"{args.config} [distill]" if args.config else "distill"
    config = build_config(DistillConfig, file_values, vars(args), source=source)
    check_inputs(config)  # before torch loads
    from speechkd.distill import distill

    quiet_transformers()
    summary = distill(config)
    if os.environ.get("RANK", "0") == "0":  # one summary line under `accelerate launch`
        print(json.dumps({k: v for k, v in summary.items() if k != "data"}))
    return 0
