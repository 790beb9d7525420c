"""Stage 4's settings: what `speechkd evaluate` measures, against what, and how it decodes and times."""

from __future__ import annotations

from dataclasses import dataclass

from speechkd.decoding import DecodingOptions
from speechkd.evaluate.engines import ENGINES
from speechkd.evaluate.speculative import DRAFT_SCHEDULES, DraftOptions


@dataclass(frozen=True)
class EvaluateConfig:
    """What `speechkd evaluate` measures: the model, what it is compared with, how it decodes and times."""

    model: str
    manifests: tuple[str, ...]
    output_dir: str
    baseline: str | None = None  # compared on the same utterances, interleaved batch by batch
    assistant: str | None = None  # a student drafting for the teacher: `baseline` if given, else `model`
    engine: str = "transformers"  # or "faster-whisper" (CTranslate2 directories from `speechkd export`)
    device: str | None = None
    dtype: str = "float32"
    compute_type: str | None = None  # faster-whisper only (e.g. int8); default: dtype
    threads: int | None = None  # CPU threads for torch and CTranslate2 (default: theirs)
    batch_size: int = 16
    num_beams: int = 1
    language: str | None = None
    task: str | None = None
    max_new_tokens: int | None = None
    long_form: bool = True
    no_reference: bool = False  # speed and transcripts only, for manifests without `text`
    max_utterances: int | None = None  # the first N of each manifest
    warmup: int = 1  # untimed decode calls per system before timing
    latency_utterances: int | None = (
        64  # timed at batch size 1 when batch_size > 1, speculative too (None: all)
    )
    draft_tokens: int = 5
    draft_schedule: str = "heuristic"
    draft_confidence: float | None = None
    profile_utterances: int = 4  # per-component cost profile (encoder, decoder step, projection)
    bootstrap_samples: int = 1000
    seed: int = 0
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "manifests", tuple(str(m) for m in self.manifests))
        if not self.manifests:
            raise ValueError("give at least one --manifest to evaluate on")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.assistant and self.engine != "transformers":
            raise ValueError("--assistant (speculative decoding) needs --engine transformers")
        if self.assistant and self.num_beams != 1:
            raise ValueError("--assistant verifies greedy decoding: use it with --num-beams 1")
        if self.batch_size < 1 or self.warmup < 0:
            raise ValueError("--batch-size must be at least 1 and --warmup at least 0")
        if self.draft_schedule not in DRAFT_SCHEDULES:
            raise ValueError(
                f"draft schedule {self.draft_schedule!r}: choose one of {', '.join(DRAFT_SCHEDULES)}"
            )

    def decoding(self, batch_size: int | None = None) -> DecodingOptions:
        return DecodingOptions(
            batch_size=batch_size or self.batch_size,
            num_beams=self.num_beams,
            language=self.language,
            task=self.task,
            max_new_tokens=self.max_new_tokens,
            long_form=self.long_form,
        )

    def draft(self) -> DraftOptions:
        return DraftOptions(self.draft_tokens, self.draft_schedule, self.draft_confidence)
