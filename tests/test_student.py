"""Stage 2: students cut from the real bundled tiny.en teacher, checked on real speech."""

from __future__ import annotations

import json

import pytest
import torch

from speechkd.audio import load_audio
from speechkd.cli import main
from speechkd.config import ConfigError
from speechkd.models import load_model
from speechkd.student import CreateStudentConfig, create_student, remap_alignment_heads, spaced_layer_ids


def test_spaced_layer_ids_keep_first_and_last():
    assert spaced_layer_ids(32, 2) == [0, 31]
    assert spaced_layer_ids(6, 2) == [0, 5]
    assert spaced_layer_ids(6, 3) == [0, 2, 5]
    assert spaced_layer_ids(4, 4) == [0, 1, 2, 3]
    assert spaced_layer_ids(4, 1) == [3]
    with pytest.raises(ConfigError):
        spaced_layer_ids(4, 5)


def test_alignment_heads_follow_their_layers():
    base_heads = [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]
    heads, source = remap_alignment_heads(base_heads, [0, 5], n_heads=8)
    assert (heads, source) == ([[1, 1], [1, 2], [1, 4], [1, 6]], "remapped")
    # no head survives: every head of the last half of the student's layers, as openai/whisper does
    heads, source = remap_alignment_heads([[3, 1]], [0, 5], n_heads=2)
    assert (heads, source) == ([[1, 0], [1, 1]], "default")


@pytest.fixture(scope="module")
def tiny_student(tiny_en_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("student") / "tiny-2"
    provenance = create_student(CreateStudentConfig(teacher=str(tiny_en_dir), output_dir=str(output)))
    return output, provenance


def test_two_layer_student_is_consistent(tiny_student, tiny_en_dir):
    output, provenance = tiny_student
    assert provenance["decoder_layer_map"] == [0, 3]
    assert provenance["encoder_layer_map"] == [0, 1, 2, 3]
    counts = provenance["parameters"]
    assert counts["student"]["encoder"] == counts["teacher"]["encoder"]
    assert counts["student"]["total"] < counts["teacher"]["total"]
    saved = json.loads((output / "speechkd.json").read_text())
    assert saved["teacher"] == str(tiny_en_dir)
    student, _ = load_model(str(output), device="cpu")
    teacher, _ = load_model(str(tiny_en_dir), device="cpu")
    assert student.config.decoder_layers == 2
    assert [layer.self_attn.layer_idx for layer in student.model.decoder.layers] == [0, 1]
    assert student.generation_config.forced_decoder_ids is None
    # tiny.en's heads sit on layers 1-3; only those of layer 3 survive, now on the student's layer 1
    assert student.generation_config.alignment_heads == [[1, 0], [1, 1], [1, 2], [1, 3], [1, 4]]
    for name, tensor in teacher.model.decoder.layers[3].state_dict().items():
        assert torch.equal(student.model.decoder.layers[1].state_dict()[name], tensor)


def test_word_timestamps_work_on_the_student(tiny_student, fotaq_dev_records):
    output, _ = tiny_student
    student, processor = load_model(str(output), device="cpu")
    audio = load_audio(fotaq_dev_records[0]["audio"])
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    out = student.generate(features, return_token_timestamps=True, max_new_tokens=8)
    assert out["token_timestamps"].shape == out["sequences"].shape


@pytest.mark.slow
def test_keeping_every_layer_reproduces_the_teacher(tiny_en_dir, fotaq_dev_records, tmp_path):
    create_student(CreateStudentConfig(teacher=str(tiny_en_dir), output_dir=str(tmp_path), decoder_layers=4))
    student, processor = load_model(str(tmp_path), device="cpu")
    teacher, _ = load_model(str(tiny_en_dir), device="cpu")
    audio = load_audio(fotaq_dev_records[0]["audio"])
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        tokens = teacher.generate(features, max_new_tokens=32)
        assert torch.equal(student.generate(features, max_new_tokens=32), tokens)
        logits = [m(input_features=features, decoder_input_ids=tokens).logits for m in (student, teacher)]
    assert torch.equal(*logits)


def test_cli_layer_ids_encoder_layers_and_no_overwrite(tiny_en_dir, tmp_path, capsys):
    output = tmp_path / "student"
    args = ["create-student", "--teacher", str(tiny_en_dir), "--output-dir", str(output)]
    assert main([*args, "--layer-ids", "1,-1", "--encoder-layers", "2"]) == 0
    assert "parameters: teacher 37.8 M" in capsys.readouterr().out
    provenance = json.loads((output / "speechkd.json").read_text())
    assert provenance["decoder_layer_map"] == [1, 3]
    assert provenance["encoder_layer_map"] == [0, 3]
    assert json.loads((output / "config.json").read_text())["encoder_layers"] == 2
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--layer-ids", "3,1", "--overwrite"]) == 2
    assert "distinct and increasing" in capsys.readouterr().err
