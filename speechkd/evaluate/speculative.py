"""Speculative decoding: a student drafts tokens, the teacher verifies them (batch size 1, same output)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speechkd.encoder_window import apply_window
from speechkd.evaluate.config import DRAFT_SCHEDULES, DraftOptions  # noqa: F401 (DRAFT_SCHEDULES: re-exported)
from speechkd.models import ModelError, resolve_dtype, resolve_model


@dataclass
class DraftStats:
    """Draft tokens proposed and accepted by the teacher, counted per verification round."""

    rounds: int = 0
    proposed: int = 0
    accepted: int = 0
    per_round: list[tuple[int, int]] = field(default_factory=list)

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.proposed if self.proposed else None

    def add(self, proposed: int, accepted: int) -> None:
        self.rounds += 1
        self.proposed += proposed
        self.accepted += accepted
        self.per_round.append((proposed, accepted))


def encoders_identical(teacher, student) -> bool:
    """True when the student's encoder has exactly the teacher's weights (then it can reuse its output)."""
    mine, theirs = teacher.model.encoder.state_dict(), student.model.encoder.state_dict()
    if mine.keys() != theirs.keys():
        return False
    return all(
        mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k].to(mine[k].device)) for k in mine
    )


def load_draft(student_ref: str, teacher):
    """The draft for TEACHER: decoder-only (`WhisperForCausalLM`) when the encoders are identical, else the full student.

    STUDENT_REF is a student checkpoint (encoder + decoder: the encoders are compared) or a decoder-only draft
    export (`distill`'s draft/: trusted to share the teacher's encoder). Returns (draft, kind) with kind
    "decoder-only" or "full".
    """
    from transformers import WhisperForCausalLM, WhisperForConditionalGeneration

    location = resolve_model(student_ref)
    dtype = resolve_dtype(_dtype_name(teacher.dtype), teacher.device)
    if _is_decoder_only(location):
        return _decoder_only(WhisperForCausalLM, location, student_ref, teacher, dtype), "decoder-only"
    student = apply_window(WhisperForConditionalGeneration.from_pretrained(location, dtype=dtype))
    _check_vocabulary(student, teacher, student_ref)
    if not encoders_identical(teacher, student):
        return student.to(teacher.device).eval(), "full"
    del student
    return _decoder_only(WhisperForCausalLM, location, student_ref, teacher, dtype), "decoder-only"


def _is_decoder_only(location: str) -> bool:
    config = Path(location) / "config.json"
    if not config.is_file():
        return False  # a hub id: read as a full checkpoint
    return "WhisperForCausalLM" in json.loads(config.read_text(encoding="utf-8")).get("architectures", [])


def _decoder_only(causal_class, location: str, student_ref: str, teacher, dtype):
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # a full checkpoint's encoder weights are expected to go unused here
    try:
        draft, info = causal_class.from_pretrained(location, dtype=dtype, output_loading_info=True)
    finally:
        logging.set_verbosity(verbosity)
    if info["missing_keys"]:
        missing = ", ".join(sorted(info["missing_keys"])[:5])
        raise ModelError(f"assistant {student_ref}: decoder weights missing for the draft: {missing}")
    _check_vocabulary(draft, teacher, student_ref)
    return draft.to(teacher.device).eval()


def _check_vocabulary(draft, teacher, student_ref: str) -> None:
    if draft.config.vocab_size != teacher.config.vocab_size:
        raise ModelError(
            f"assistant {student_ref}: vocabulary of {draft.config.vocab_size} tokens, but the model has "
            f"{teacher.config.vocab_size}; a draft must share the teacher's tokenizer"
        )


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")


def configure_draft(draft, options: DraftOptions) -> None:
    """Set the draft length and schedule where transformers reads them: the draft's generation config."""
    config = draft.generation_config
    config.num_assistant_tokens = options.tokens
    config.num_assistant_tokens_schedule = options.schedule
    if options.confidence is not None:
        config.assistant_confidence_threshold = options.confidence


@contextlib.contextmanager
def counting_draft_tokens(teacher, stats: DraftStats) -> Iterator[DraftStats]:
    """Within the block, count each verification round of TEACHER's assisted generate into STATS.

    transformers reports every round to its candidate generator's `update_candidate_strategy(input_ids,
    scores, num_matches)`, where scores hold the teacher's logits for the drafted tokens plus one: wrapping
    that call on this teacher's generator instances reads proposed and accepted counts without changing them.
    """
    original = getattr(teacher, "_get_candidate_generator", None)
    if original is None:  # a transformers without this hook: outputs stay right, counts stay empty
        yield stats
        return

    def candidate_generator(*args, **kwargs):
        generator = original(*args, **kwargs)
        update = generator.update_candidate_strategy

        def counted_update(input_ids, scores, num_matches):
            stats.add(int(scores.shape[1]) - 1, int(num_matches))
            return update(input_ids, scores, num_matches)

        generator.update_candidate_strategy = counted_update
        return generator

    shadowed = vars(teacher).get("_get_candidate_generator")
    teacher._get_candidate_generator = candidate_generator
    try:
        yield stats
    finally:
        if shadowed is None:
            del teacher._get_candidate_generator  # the class method shows through again
        else:
            teacher._get_candidate_generator = shadowed


def round_speedup(
    proposed: float, accepted: float, step_ms: float, draft_ms: float, verify_ms: float
) -> float:
    """Speed-up of the decoder loop from per-round counts and measured costs (Leviathan et al. 2023, Eq. 1).

    A round drafts PROPOSED tokens (DRAFT_MS each) and verifies them in one teacher forward (VERIFY_MS); it
    yields ACCEPTED + 1 tokens, which the teacher alone would spend that many steps (STEP_MS each) on.
    """
    return (accepted + 1) * step_ms / (proposed * draft_ms + verify_ms)
