"""Stage 3's settings: everything `speechkd distill` does, and which of them a resumed run must share."""

from __future__ import annotations

from dataclasses import dataclass

from speechkd.config import ConfigError
from speechkd.losses import LossWeights

# Settings a resumed run must share with the run it continues (others, e.g. eval_steps, may change).
RUN_DEFINING = (
    "teacher student train_manifest label_field language task ce_weight kl_weight temperature mse_weight "
    "learning_rate weight_decay warmup_steps lr_schedule max_grad_norm batch_size gradient_accumulation_steps "
    "max_steps epochs freeze_encoder freeze_embed_positions freeze_embed_tokens timestamp_probability prompt_probability prompt_max_tokens teacher_topk seed"
).split()


@dataclass(frozen=True)
class DistillConfig:
    """Everything `speechkd distill` does; defaults follow the Distil-Whisper recipe (README.md, "Distil")."""

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
    cache_dir: str | None = None  # default OUTPUT_DIR/cache; entries are keyed by audio and model weights
    eval_steps: int = 200
    eval_batch_size: int = 16
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
        for name in ("teacher", "student", "train_manifest", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(f"distill: --{name.replace('_', '-')} is required")
        if self.encoder_cache not in ("disk", "memory", "none"):
            raise ConfigError(
                f"distill: encoder_cache must be disk, memory or none, not {self.encoder_cache!r}"
            )
        if self.lr_schedule not in ("linear", "constant"):
            raise ConfigError(f"distill: lr_schedule must be linear or constant, not {self.lr_schedule!r}")
        if self.teacher_topk and (self.encoder_cache == "none" or not self.freeze_encoder or self.mse_weight):
            raise ConfigError("distill: teacher_topk needs a frozen, cached encoder and no hidden-state loss")
        if self.prompt_max_tokens < 2:
            raise ConfigError("distill: prompt_max_tokens must be at least 2 (<|startofprev|> and one token)")
        for name in ("timestamp_probability", "prompt_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"distill: {name} must lie in [0, 1]")

    @property
    def weights(self) -> LossWeights:
        return LossWeights(self.ce_weight, self.kl_weight, self.temperature, self.mse_weight)
