"""The systems `evaluate` times: a transformers model, a teacher with a speculative draft, or faster-whisper."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechkd.audio import SAMPLE_RATE
from speechkd.decoding import (
    WINDOW_SECONDS,
    DecodingOptions,
    DecodingResult,
    check_language_options,
    decode_audios,
    token_budget,
)
from speechkd.evaluate.config import ENGINES
from speechkd.evaluate.speculative import (
    DraftOptions,
    DraftStats,
    configure_draft,
    counting_draft_tokens,
    load_draft,
)
from speechkd.models import ModelError, count_parameters, load_model, pick_device, resolve_model
from speechkd.options import DEFAULT_DTYPE
from speechkd.text import compression_ratio


class TransformersEngine:
    """A Whisper model decoded through speechkd's one decoding loop (what `transcribe` runs)."""

    def __init__(self, name: str, ref: str, model, processor, options: DecodingOptions):
        check_language_options(model, options)
        self.name, self.ref = name, ref
        self.model, self.processor, self.options = model, processor, options
        self.device = model.device
        self.generate_kwargs: dict = {}

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[DecodingResult]:
        extra = self.generate_kwargs or None
        return decode_audios(self.model, self.processor, audios, self.options, generate_kwargs=extra)

    def at_batch_size(self, batch_size: int) -> TransformersEngine:
        """The same model (shared, not copied) decoding at another batch size."""
        twin = copy.copy(self)
        twin.options = dataclasses.replace(self.options, batch_size=batch_size)
        return twin

    def info(self) -> dict:
        return {
            "engine": "transformers",
            "ref": self.ref,
            "parameters": count_parameters(self.model),
            "encoder_layers": self.model.config.encoder_layers,
            "decoder_layers": self.model.config.decoder_layers,
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }


class SpeculativeEngine(TransformersEngine):
    """The teacher decoding greedily with a student draft at batch size 1; counts accepted draft tokens."""

    def __init__(
        self, name: str, teacher: TransformersEngine, draft, draft_kind: str, draft_options: DraftOptions
    ):
        # transformers' assisted generation decodes one utterance at a time
        options = dataclasses.replace(teacher.options, batch_size=1)
        super().__init__(name, teacher.ref, teacher.model, teacher.processor, options)
        self.draft, self.draft_kind, self.draft_options = draft, draft_kind, draft_options
        self.target = teacher.name  # the system this one must reproduce, token for token
        configure_draft(draft, draft_options)
        self.generate_kwargs = {"assistant_model": draft}
        self.stats = DraftStats()
        self.last_stats = DraftStats()

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[DecodingResult]:
        self.last_stats = DraftStats()
        with counting_draft_tokens(self.model, self.last_stats):
            results = super().transcribe(audios)
        for proposed, accepted in self.last_stats.per_round:
            self.stats.add(proposed, accepted)
        return results

    def info(self) -> dict:
        draft_parameters = count_parameters(self.draft)
        return super().info() | {
            "draft": self.draft_kind,
            "target": self.target,
            "draft_parameters": draft_parameters,
            "parameters": count_parameters(self.model) + draft_parameters,
            "draft_tokens": self.draft_options.tokens,
            "draft_schedule": self.draft_options.schedule,
            "draft_confidence": self.draft.generation_config.assistant_confidence_threshold,
        }


class FasterWhisperEngine:
    """A CTranslate2 model through faster-whisper: `WhisperModel.transcribe` at batch size 1, batched
    `generate` over several short clips otherwise (faster-whisper itself only batches within one file)."""

    def __init__(
        self, name: str, ref: str, model_dir: Path, options: DecodingOptions, device, compute_type, threads
    ):
        from faster_whisper import WhisperModel

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        self.name, self.ref, self.options, self.model_dir = name, ref, options, Path(model_dir)
        self.device = pick_device(device)
        self.compute_type = compute_type
        self.whisper = WhisperModel(
            str(model_dir),
            device=self.device.type,
            device_index=self.device.index or 0,
            compute_type=compute_type,
            cpu_threads=threads,
        )

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[DecodingResult]:
        window = WINDOW_SECONDS * SAMPLE_RATE
        short = [i for i, a in enumerate(audios) if len(a) <= window]
        results: list[DecodingResult | None] = [None] * len(audios)
        if self.options.batch_size > 1 and len(short) > 1:
            for start in range(0, len(short), self.options.batch_size):
                chunk = short[start : start + self.options.batch_size]
                for i, result in zip(chunk, self._generate_batch([audios[i] for i in chunk])):
                    results[i] = result
        for i, audio in enumerate(audios):
            if results[i] is None:
                results[i] = self._transcribe_one(audio)
        return results

    def at_batch_size(self, batch_size: int) -> FasterWhisperEngine:
        """The same model (shared, not copied) decoding at another batch size."""
        twin = copy.copy(self)
        twin.options = dataclasses.replace(self.options, batch_size=batch_size)
        return twin

    def _transcribe_one(self, audio: np.ndarray) -> DecodingResult:
        duration = len(audio) / SAMPLE_RATE
        long_form = duration > WINDOW_SECONDS
        if long_form and not self.options.long_form:
            return DecodingResult(duration=duration, error=f"too_long: {duration:.1f} s > 30 s")
        segments, _ = self.whisper.transcribe(
            audio,
            language=self.options.language,
            task=self.options.task or "transcribe",
            beam_size=self.options.num_beams,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=not (long_form or self.options.return_timestamps),
            max_new_tokens=None if long_form else self._budget(duration),
            vad_filter=False,
        )
        segments = list(segments)  # decoding happens while iterating
        text = "".join(s.text for s in segments).strip()
        return DecodingResult(
            text=text,
            tokens=[t for s in segments for t in s.tokens],
            avg_logprob=float(np.mean([s.avg_logprob for s in segments])) if segments else None,
            no_speech_prob=segments[0].no_speech_prob if segments else None,
            compression_ratio=compression_ratio(text),
            duration=duration,
            long_form=long_form,
        )

    def _generate_batch(self, audios: Sequence[np.ndarray]) -> list[DecodingResult]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        whisper = self.whisper
        features = np.stack([pad_or_trim(whisper.feature_extractor(a)) for a in audios])
        multilingual = whisper.model.is_multilingual
        tokenizer = Tokenizer(
            whisper.hf_tokenizer,
            multilingual,
            task=self.options.task or "transcribe",
            language=(self.options.language or "en") if multilingual else None,
        )
        prompt = whisper.get_prompt(tokenizer, [], without_timestamps=not self.options.return_timestamps)
        durations = [len(a) / SAMPLE_RATE for a in audios]
        budget = max(self._budget(d) for d in durations)
        encoded = whisper.encode(features)
        outputs = whisper.model.generate(
            encoded,
            [list(prompt)] * len(audios),
            beam_size=self.options.num_beams,
            max_length=len(prompt) + budget,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        results = []
        for output, duration in zip(outputs, durations):
            tokens = [t for t in output.sequences_ids[0] if t < tokenizer.eot]
            text = tokenizer.decode(tokens).strip()
            results.append(
                DecodingResult(
                    text=text,
                    tokens=tokens,
                    avg_logprob=output.scores[0] if output.scores else None,
                    no_speech_prob=output.no_speech_prob,
                    compression_ratio=compression_ratio(text),
                    duration=duration,
                )
            )
        return results

    def _budget(self, duration: float) -> int:
        return token_budget(duration, self.options, limit=self.whisper.max_length - 8)

    def info(self) -> dict:
        provenance = _read_json(self.model_dir / "speechkd.json")
        return {
            "engine": "faster-whisper",
            "ref": self.ref,
            "parameters": provenance.get("parameters"),
            "encoder_layers": provenance.get("encoder_layers"),
            "decoder_layers": provenance.get("decoder_layers"),
            "compute_type": self.compute_type,
        }


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def load_engine(
    name: str,
    ref: str,
    engine: str,
    options: DecodingOptions,
    device: str | None = None,
    dtype: str = DEFAULT_DTYPE,
    compute_type: str | None = None,
    threads: int = 0,
):
    """Load REF as a system to evaluate with ENGINE ("transformers" or "faster-whisper")."""
    if engine == "transformers":
        model, processor = load_model(ref, device=device, dtype=dtype)
        return TransformersEngine(name, ref, model, processor, options)
    if engine == "faster-whisper":
        model_dir = Path(ref).expanduser()
        if not (model_dir / "model.bin").is_file():
            raise ModelError(
                f"{ref}: not a CTranslate2 model directory (no model.bin); convert one with "
                f"`speechkd export --format ctranslate2 MODEL {ref}`"
            )
        _require_faster_whisper()
        if compute_type is None:  # like torch: half precision on a CPU computes in float32
            compute_type = "float32" if dtype == "float16" and pick_device(device).type == "cpu" else dtype
        return FasterWhisperEngine(name, ref, model_dir, options, device, compute_type, threads)
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def load_speculative_engine(
    name: str, teacher: TransformersEngine, assistant: str, draft_options: DraftOptions
):
    """TEACHER with ASSISTANT (a student directory or reference) as its speculative draft."""
    resolve_model(assistant)  # a clear error for a wrong path before any loading
    draft, kind = load_draft(assistant, teacher.model)
    return SpeculativeEngine(name, teacher, draft, kind, draft_options)


def _require_faster_whisper() -> None:
    try:
        import faster_whisper  # noqa: F401
    except ImportError as error:
        raise ModelError(
            "--engine faster-whisper needs the ct2 extra: pip install 'speechkd[ct2]'"
        ) from error
