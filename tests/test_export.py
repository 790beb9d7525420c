"""`speechkd export --format ctranslate2` and evaluation through faster-whisper, the deployment engine."""

from __future__ import annotations

import json

import pytest
from student_helper import make_student

from speechkd.decoding import DecodingOptions
from speechkd.evaluate import EvaluateConfig, evaluate
from speechkd.export import export_ctranslate2
from speechkd.manifest import write_manifest

pytest.importorskip("faster_whisper")


@pytest.fixture(scope="module")
def exported(tiny_en_dir, tmp_path_factory):
    """tiny.en and its untrained 2-layer student, both converted by CTranslate2's own converter."""
    folder = tmp_path_factory.mktemp("ct2")
    student = make_student("bundled:tiny.en", folder / "student")
    return export_ctranslate2("bundled:tiny.en", folder / "teacher-ct2"), export_ctranslate2(
        str(student), folder / "student-ct2"
    )


@pytest.mark.slow
def test_export_writes_what_faster_whisper_reads(exported):
    teacher, student = exported
    for folder in (teacher, student):
        names = {p.name for p in folder.iterdir()}
        assert {
            "model.bin",
            "config.json",
            "tokenizer.json",
            "preprocessor_config.json",
            "speechkd.json",
        } <= names
    provenance = json.loads((student / "speechkd.json").read_text())
    assert provenance["decoder_layers"] == 2 and provenance["encoder_layers"] == 4
    assert provenance["parameters"] < json.loads((teacher / "speechkd.json").read_text())["parameters"]
    heads = json.loads((student / "config.json").read_text())["alignment_heads"]
    assert heads and all(layer < 2 for layer, _ in heads)  # only layers the student has
    assert json.loads((teacher / "preprocessor_config.json").read_text())["feature_size"] == 80


def test_export_refuses_to_overwrite(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"an earlier export")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_ctranslate2("bundled:tiny.en", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 3])
def test_faster_whisper_evaluates_the_pair(exported, fotaq_dev_records, tmp_path, batch_size):
    teacher, student = exported
    write_manifest(tmp_path / "dev3.jsonl", fotaq_dev_records[:3])
    config = EvaluateConfig(
        model=str(student),
        baseline=str(teacher),
        engine="faster-whisper",
        manifests=(str(tmp_path / "dev3.jsonl"),),
        output_dir=str(tmp_path / "eval"),
        decoding=DecodingOptions(batch_size=batch_size),
        latency_utterances=1,
        threads=1,
        progress=False,
    )
    metrics = evaluate(config)
    assert metrics["systems"]["baseline"]["wer"] < 0.2  # the teacher transcribes well through CTranslate2 too
    assert metrics["systems"]["baseline"]["engine"] == "faster-whisper"
    assert metrics["comparison"]["speedup"] > 0 and metrics["comparison"]["parameter_ratio"] > 1
    assert metrics["n_failed"] == 0 and metrics["rtfx"] > 0


def test_speculative_decoding_needs_the_transformers_engine(tmp_path):
    with pytest.raises(ValueError, match="--assistant"):
        EvaluateConfig(
            model="x",
            manifests=("m.jsonl",),
            output_dir=str(tmp_path),
            assistant="y",
            engine="faster-whisper",
        )
