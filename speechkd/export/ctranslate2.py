"""Export a Whisper checkpoint (a student, a teacher) to CTranslate2, the engine faster-whisper serves."""

from __future__ import annotations

from pathlib import Path

from speechkd.files import staged_dir, write_provenance
from speechkd.models import ModelError, resolve_model

FORMATS = ("ctranslate2",)
QUANTIZATIONS = (
    "float32",
    "float16",
    "bfloat16",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
)


def export_ctranslate2(
    ref: str, output_dir: str | Path, quantization: str | None = None, overwrite: bool = False
) -> Path:
    """Convert REF with CTranslate2's own converter into OUTPUT_DIR, with the files faster-whisper reads.

    The directory gets model.bin, config.json, vocabulary.json, tokenizer.json, preprocessor_config.json
    (mel bins: faster-whisper falls back to 80 without it) and speechkd.json (source and sizes).
    """
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    output_dir = Path(output_dir)
    if (output_dir / "model.bin").exists() and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a CTranslate2 model; pass --overwrite to replace it"
        )
    location = resolve_model(ref)
    converter = _converter_class()(location, copy_files=["tokenizer.json"])
    with staged_dir(output_dir) as staging:
        converter.convert(str(staging), quantization=quantization, force=True)
        _write_preprocessor_config(location, staging)
        provenance = {"source": ref, "format": "ctranslate2", "quantization": quantization or "float32"}
        write_provenance(staging, provenance | converter.sizes)
    return output_dir


def _converter_class():
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as error:
        raise ModelError(
            "export --format ctranslate2 needs the ct2 extra: pip install 'speechkd[ct2]'"
        ) from error

    class StudentConverter(TransformersConverter):
        """CTranslate2's converter, with alignment heads that exist in the (possibly shallower) decoder."""

        sizes: dict = {}

        def load_model(self, model_class, model_name_or_path, **kwargs):
            model = super().load_model(model_class, model_name_or_path, **kwargs)
            _keep_existing_alignment_heads(model)
            config = model.config
            self.sizes = {
                "parameters": sum(p.numel() for p in model.parameters()),
                "encoder_layers": config.encoder_layers,
                "decoder_layers": config.decoder_layers,
            }
            return model

    return StudentConverter


def _keep_existing_alignment_heads(model) -> None:
    """A student copied its teacher's alignment heads, which may name decoder layers it no longer has."""
    generation = model.generation_config
    heads = getattr(generation, "alignment_heads", None)
    if heads is None:
        return
    layers = model.config.decoder_layers
    kept = [head for head in heads if head[0] < layers]
    # none left: CTranslate2's default (all heads of the last half of the layers) applies
    generation.alignment_heads = kept or None


def _write_preprocessor_config(location: str, output_dir: Path) -> None:
    from transformers import WhisperFeatureExtractor

    WhisperFeatureExtractor.from_pretrained(location).to_json_file(output_dir / "preprocessor_config.json")
