"""Stage 3's settings: everything `speechkd distill` does, and which of them a resumed run must share."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from speechkd.config import (
    ConfigError,
    at_least,
    check_types,
    in_range,
    one_of,
    option_paths,
    positive,
    required,
)
from speechkd.manifest import check_manifest_file
from speechkd.options import TASKS, DecodingOptions

if TYPE_CHECKING:
    from speechkd.losses import LossWeights

LR_SCHEDULES = ("linear", "constant")
ENCODER_CACHES = ("disk", "memory", "none")
MIXED_PRECISIONS = (None, "no", "bf16", "fp16")

# Options a resumed run must share with the run it continues (others, e.g. eval_steps, may change), by their
# flat names in `config_to_dict` (a nested option by its flat name too, e.g. eval_batch_size).
RUN_DEFINING = (
    "teacher", "student", "train_manifest", "label_field", "language", "task",
    "ce_weight", "kl_weight", "temperature", "mse_weight",
    "learning_rate", "weight_decay", "warmup_steps", "lr_schedule", "max_grad_norm",
    "batch_size", "gradient_accumulation_steps", "max_steps", "epochs",
    "freeze_encoder", "freeze_embed_positions", "freeze_embed_tokens",
    "timestamp_probability", "prompt_probability", "prompt_max_tokens", "teacher_topk", "seed",
)  # fmt: skip


@dataclass(frozen=True)
class DistillConfig:
    """Everything `speechkd distill` does; defaults follow the Distil-Whisper recipe (README.md, "Distil")."""

    SECTION = "distill"
    RENAMED = {
        "cache_dir": "encoder_cache_dir"
    }  # old key -> new: still read, with a warning, for one release

    teacher: str = ""
    student: str = ""
    train_manifest: str = ""
    output_dir: str = ""
    eval_manifest: str | None = None
    label_field: str = "teacher_text"
    language: str | None = None
    task: str = "transcribe"
    ce_weight: float = 0.8
    kl_weight: float = 1.0
    temperature: float = 2.0
    mse_weight: float = 0.0
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    lr_schedule: str = "linear"  # or "constant" (after the warm-up)
    max_grad_norm: float = 1.0
    batch_size: int = 16  # per process
    gradient_accumulation_steps: int = 1
    max_steps: int | None = None  # wins over epochs
    epochs: float = 3.0
    mixed_precision: str | None = None  # None: bf16 on a GPU, none on a CPU
    gradient_checkpointing: bool = False
    freeze_encoder: bool = True
    freeze_embed_positions: bool = True
    freeze_embed_tokens: bool = (
        False  # token embeddings = the output projection (tied): 70-80% of a small decoder
    )
    timestamp_probability: float = 0.2
    prompt_probability: float = 0.2  # rows with a `previous` clip get its text as prompt this often
    prompt_max_tokens: int = 224  # the prompt's length cap, <|startofprev|> included (Whisper: 224)
    encoder_cache: str = "disk"  # disk | memory | none
    teacher_topk: int = 0  # > 0: cache the teacher's top-k tempered log-probs; steps then skip the teacher
    encoder_cache_dir: str | None = (
        None  # default OUTPUT_DIR/cache; `pseudo-label --encoder-cache-dir` fills it
    )
    eval_steps: int = 200
    # how the dev set is decoded (flat keys: eval_batch_size, eval_num_beams ...); language/task: the labels'
    eval_decoding: DecodingOptions = field(default_factory=DecodingOptions, metadata={"prefix": "eval_"})
    eval_max_utterances: int | None = None
    eval_at_start: bool = True  # also score the untrained student and the teacher
    log_steps: int = 10
    save_steps: int | None = None  # default: eval_steps
    keep_checkpoints: int = 2
    seed: int = 0
    device: str | None = None
    num_workers: int = 0
    resume: bool = False
    overwrite: bool = False
    stop_after: int | None = None  # end the run after this step (as if interrupted), checkpoint kept
    progress: bool = True

    def __post_init__(self):
        check_types(self)
        required(self, "teacher", "student", "train_manifest", "output_dir", "label_field")
        one_of(self, "task", TASKS)
        one_of(self, "lr_schedule", LR_SCHEDULES)
        one_of(self, "mixed_precision", MIXED_PRECISIONS)
        one_of(self, "encoder_cache", ENCODER_CACHES)
        positive(self, "temperature", "learning_rate", "epochs", "batch_size", "gradient_accumulation_steps")
        positive(self, "max_steps", "eval_steps", "eval_max_utterances", "log_steps", "save_steps")
        positive(self, "keep_checkpoints", "stop_after")
        at_least(self, 0, "ce_weight", "kl_weight", "mse_weight", "weight_decay", "max_grad_norm")
        at_least(self, 0, "warmup_steps", "teacher_topk", "seed", "num_workers")
        at_least(self, 2, "prompt_max_tokens")  # <|startofprev|> and one token
        in_range(self, 0, 1, "timestamp_probability", "prompt_probability")
        if self.teacher_topk and (self.encoder_cache == "none" or not self.freeze_encoder or self.mse_weight):
            raise ConfigError("distill: teacher_topk needs a frozen, cached encoder and no hidden-state loss")

    @property
    def weights(self) -> LossWeights:
        from speechkd.losses import LossWeights

        return LossWeights(self.ce_weight, self.kl_weight, self.temperature, self.mse_weight)

    def evaluation_decoding(self) -> DecodingOptions:
        """How the student is scored: eval_decoding, in the labels' language and task unless it names its own."""
        options = self.eval_decoding
        return replace(options, language=options.language or self.language, task=options.task or self.task)


def check_inputs(config: DistillConfig) -> None:
    """Refuse missing manifests or a missing student folder before any model loads."""
    check_manifest_file(config.train_manifest)
    if config.eval_manifest:
        check_manifest_file(config.eval_manifest)
    student = Path(config.student)
    if student.exists() and not student.is_dir():
        raise ConfigError(
            f"distill: --student {student} is not a folder (make one with `speechkd create-student`)"
        )


_UNKNOWN = set(RUN_DEFINING) - set(option_paths(DistillConfig))
if _UNKNOWN:  # a renamed option must not silently drop out of the resume check
    raise ImportError(f"RUN_DEFINING names options DistillConfig does not have: {sorted(_UNKNOWN)}")
