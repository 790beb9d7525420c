"""Stage 2: a student initialised from the teacher, keeping maximally spaced layers (first and last kept)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechkd.config import ConfigError, check_types, invalid, one_of, positive, required
from speechkd.files import save_model_dir
from speechkd.options import ENCODER_WINDOWS


@dataclass(frozen=True)
class CreateStudentConfig:
    """What `speechkd create-student` builds: which teacher layers the student keeps, and where it goes."""

    SECTION = "create_student"

    teacher: str = ""
    output_dir: str = ""
    decoder_layers: int | None = 2  # ignored when layer_ids is given
    layer_ids: tuple[int, ...] | None = None  # teacher decoder layers to keep, e.g. (0, 5)
    encoder_layers: int | None = None  # None: the whole teacher encoder (the paper's advice)
    encoder_window: str | None = None  # "audio": encode the audio's length, not 30 s (None: the teacher's)
    overwrite: bool = False

    def __post_init__(self):
        check_types(self)
        required(self, "teacher", "output_dir")
        positive(self, "decoder_layers", "encoder_layers")
        if self.layer_ids is not None and not self.layer_ids:
            raise invalid(self, "layer_ids", "must name at least one layer (or be left out)")
        one_of(self, "encoder_window", (None, *ENCODER_WINDOWS))


def spaced_layer_ids(n_teacher: int, n_student: int) -> list[int]:
    """N layer indices spread evenly over the teacher's L, first and last always kept (one layer: the last)."""
    if not 1 <= n_student <= n_teacher:
        raise ConfigError(f"a student of {n_student} layers cannot be cut from a teacher of {n_teacher}")
    if n_student == 1:
        return [n_teacher - 1]
    return [int(i) for i in np.rint(np.linspace(0, n_teacher - 1, n_student))]


def remap_alignment_heads(heads: list | None, layer_map: list[int], n_heads: int) -> tuple[list, str]:
    """Teacher (layer, head) pairs moved onto the student's layers; ("default") last half when none survive."""
    student_of = {teacher: student for student, teacher in enumerate(layer_map)}
    kept = [[student_of[layer], head] for layer, head in (heads or []) if layer in student_of]
    if kept:
        return kept, "remapped"
    # openai/whisper's rule when a model has no alignment heads: every head of the last half of the layers.
    n_layers = len(layer_map)
    return [[layer, h] for layer in range(n_layers // 2, n_layers) for h in range(n_heads)], "default"


def _check_ids(ids: tuple[int, ...] | list[int], n_teacher: int, what: str) -> list[int]:
    ids = [i + n_teacher if i < 0 else i for i in ids]  # -1 = the last layer
    if not ids or any(not 0 <= i < n_teacher for i in ids):
        raise ConfigError(f"{what} layer ids {list(ids)} must lie in 0..{n_teacher - 1}")
    if sorted(set(ids)) != list(ids):
        raise ConfigError(f"{what} layer ids {list(ids)} must be distinct and increasing")
    return list(ids)


def _student_state(teacher_state: dict, decoder_map: list[int], encoder_map: list[int]) -> dict:
    """The teacher's tensors renamed to the student's layer numbering; dropped layers left out."""
    renumber = {"decoder": {t: s for s, t in enumerate(decoder_map)}}
    renumber["encoder"] = {t: s for s, t in enumerate(encoder_map)}
    pattern = re.compile(r"^model\.(encoder|decoder)\.layers\.(\d+)\.(.*)$")
    state = {}
    for name, tensor in teacher_state.items():
        match = pattern.match(name)
        if match is None:
            state[name] = tensor
            continue
        part, layer, rest = match.group(1), int(match.group(2)), match.group(3)
        if layer in renumber[part]:
            state[f"model.{part}.layers.{renumber[part][layer]}.{rest}"] = tensor
    return state


def build_student(teacher, decoder_map: list[int], encoder_map: list[int]):
    """(student, alignment-heads source): a Whisper model with the teacher's weights for the mapped layers."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from speechkd.encoder_window import apply_window

    config = WhisperConfig.from_dict(teacher.config.to_dict())
    config.decoder_layers = len(decoder_map)
    config.encoder_layers = len(encoder_map)
    student = apply_window(WhisperForConditionalGeneration(config).to(teacher.dtype))
    student.load_state_dict(_student_state(teacher.state_dict(), decoder_map, encoder_map), strict=True)
    student.generation_config = type(teacher.generation_config).from_dict(teacher.generation_config.to_dict())
    student.generation_config.forced_decoder_ids = None  # stale: language/task are passed to generate
    heads, source = remap_alignment_heads(
        teacher.generation_config.alignment_heads, decoder_map, config.decoder_attention_heads
    )
    student.generation_config.alignment_heads = heads
    return student.eval(), source


def _parameter_counts(model) -> dict[str, int]:
    from speechkd.models import count_parameters

    return {
        "total": count_parameters(model),
        "encoder": count_parameters(model.model.encoder),
        "decoder": count_parameters(model.model.decoder),
    }


def create_student(config: CreateStudentConfig) -> dict:
    """Write the student checkpoint, processor and speechkd.json into config.output_dir; return the provenance."""
    from speechkd.encoder_window import set_window, window_of
    from speechkd.models import load_model, resolve_model

    output_dir = Path(config.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not config.overwrite:
        raise FileExistsError(f"{output_dir} exists and is not empty; pass --overwrite to replace it")
    teacher, processor = load_model(config.teacher, device="cpu")
    n_dec, n_enc = teacher.config.decoder_layers, teacher.config.encoder_layers
    if config.layer_ids is not None:
        decoder_map = _check_ids(config.layer_ids, n_dec, "decoder")
    else:
        decoder_map = spaced_layer_ids(n_dec, config.decoder_layers or 2)
    encoder_map = spaced_layer_ids(n_enc, config.encoder_layers or n_enc)
    student, heads_source = build_student(teacher, decoder_map, encoder_map)
    set_window(student, config.encoder_window or window_of(teacher))
    provenance = {
        "stage": "create-student",
        "teacher": config.teacher,
        "teacher_path": resolve_model(config.teacher),
        "decoder_layer_map": decoder_map,
        "encoder_layer_map": encoder_map,
        "encoder_window": window_of(student),
        "alignment_heads": student.generation_config.alignment_heads,
        "alignment_heads_source": heads_source,
        "parameters": {"teacher": _parameter_counts(teacher), "student": _parameter_counts(student)},
    }
    save_model_dir(student, processor, output_dir, provenance)
    return provenance
