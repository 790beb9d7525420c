"""Stage 4's settings: what `speechkd evaluate` measures, against what, and how it decodes and times."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from speechkd.config import ConfigError, at_least, check_types, in_range, invalid, one_of, positive, required
from speechkd.manifest import check_manifest_file
from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES, DecodingOptions

ENGINES = ("transformers", "faster-whisper")
DRAFT_SCHEDULES = ("constant", "heuristic", "heuristic_transient")


@dataclass(frozen=True)
class DraftOptions:
    """How many tokens the draft proposes per round, and when it stops early."""

    SECTION = "draft"

    tokens: int = 5
    schedule: str = "heuristic"  # "heuristic": +2 after a fully accepted round, -1 otherwise
    confidence: float | None = None  # stop drafting below this probability; None keeps transformers' 0.4

    def __post_init__(self):
        check_types(self)
        positive(self, "tokens")
        one_of(self, "schedule", DRAFT_SCHEDULES)
        in_range(self, 0, 1, "confidence")


@dataclass(frozen=True)
class EvaluateConfig:
    """What `speechkd evaluate` measures: the model, what it is compared with, how it decodes and times."""

    SECTION = "evaluate"

    model: str = ""
    manifests: tuple[str, ...] = ()
    output_dir: str = ""
    baseline: str | None = None  # compared on the same utterances, interleaved batch by batch
    assistant: str | None = None  # a student drafting for the teacher: `baseline` if given, else `model`
    engine: str = "transformers"  # or "faster-whisper" (CTranslate2 directories from `speechkd export`)
    device: str | None = None
    dtype: str = DEFAULT_DTYPE
    compute_type: str | None = None  # faster-whisper only (e.g. int8); default: dtype
    threads: int | None = None  # CPU threads for torch and CTranslate2 (default: theirs)
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    no_reference: bool = False  # speed and transcripts only, for manifests without `text`
    max_utterances: int | None = None  # the first N of each manifest
    warmup: int = 1  # untimed decode calls per system before timing
    latency_utterances: int | None = (
        64  # timed at batch size 1 when batch_size > 1, speculative too (None: all)
    )
    draft: DraftOptions = field(default_factory=DraftOptions, metadata={"prefix": "draft_"})
    profile_utterances: int = 4  # per-component cost profile (encoder, decoder step, projection)
    bootstrap_samples: int = 1000
    seed: int = 0
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        check_types(self)
        required(self, "model", "output_dir")
        if not self.manifests:
            raise invalid(
                self, "manifests", "must name at least one manifest: give --manifest M (repeatable)"
            )
        one_of(self, "engine", ENGINES)
        one_of(self, "dtype", DTYPE_NAMES)
        positive(self, "threads", "max_utterances", "bootstrap_samples")
        at_least(self, 0, "warmup", "latency_utterances", "profile_utterances", "seed")
        if self.assistant and self.engine != "transformers":
            raise ConfigError("evaluate: --assistant (speculative decoding) needs --engine transformers")
        if self.assistant and self.decoding.num_beams != 1:
            raise ConfigError("evaluate: --assistant verifies greedy decoding: use it with --num-beams 1")


def check_inputs(config: EvaluateConfig) -> None:
    """Refuse missing manifests or a finished evaluation before any model loads."""
    for manifest in config.manifests:
        check_manifest_file(manifest)
    metrics = Path(config.output_dir) / "metrics.json"
    if metrics.exists() and not config.overwrite:
        raise FileExistsError(
            f"{metrics} exists: this evaluation is finished; pass --overwrite to run it again"
        )
