"""Audio-length encoder windows: the encoder, the student flag, decoding and the training step read the cut input."""

from __future__ import annotations

import json

import pytest
import torch

from speechkd.audio import load_audio
from speechkd.cli import main
from speechkd.decoding import DecodingOptions, decode_short_form
from speechkd.distill.data import Batch, pad_sequences
from speechkd.distill.loop import batch_losses
from speechkd.distill.setup import Models
from speechkd.encoder_window import AudioWindowEncoder, set_window, window_frames, window_of
from speechkd.losses import LossWeights
from speechkd.models import load_model


@pytest.fixture(scope="module")
def window_student(tiny_en_dir, tmp_path_factory):
    """A 2-decoder-layer tiny.en student made with `create-student --encoder-window audio`."""
    output = tmp_path_factory.mktemp("window") / "student"
    args = ["create-student", "--teacher", str(tiny_en_dir), "--output-dir", str(output)]
    assert main([*args, "--encoder-window", "audio"]) == 0
    return output


def _encoder_inputs(model) -> list[int]:
    """Record the number of log-mel frames every call of MODEL's encoder reads."""
    frames: list[int] = []
    model.get_encoder().register_forward_pre_hook(
        lambda _, args, kwargs: frames.append((args[0] if args else kwargs["input_features"]).shape[-1]),
        with_kwargs=True,
    )
    return frames


def test_window_encoder_is_whisper_on_30_s_and_takes_shorter_input(tiny_en_dir):
    model, _ = load_model(str(tiny_en_dir), device="cpu")
    features = torch.randn(2, 80, 3000)
    with torch.no_grad():
        padded = model.get_encoder()(features).last_hidden_state
        set_window(model, "audio")
        assert isinstance(model.get_encoder(), AudioWindowEncoder)
        assert torch.equal(model.get_encoder()(features).last_hidden_state, padded)
        short = model.get_encoder()(features[..., :600]).last_hidden_state
        assert short.shape == (2, 300, model.config.d_model)
        for frames in (601, 3002):
            with pytest.raises(ValueError, match="even number of log-mel frames up to 3000"):
                model.get_encoder()(torch.randn(1, 80, frames))
    set_window(model, "padded")
    assert type(model.get_encoder()).__name__ == "WhisperEncoder" and window_of(model) == "padded"
    with pytest.raises(ValueError, match="padded, audio"):
        set_window(model, "short")


def test_window_is_the_audio_plus_two_seconds_in_whole_seconds(tiny_en_dir, window_student):
    teacher, _ = load_model(str(tiny_en_dir), device="cpu")
    student, _ = load_model(str(window_student), device="cpu")
    assert window_frames(teacher, 2.0) == 3000
    assert [window_frames(student, d) for d in (0.3, 2.0, 2.01, 28.5, 40.0)] == [300, 400, 500, 3000, 3000]


def test_create_student_records_the_window_and_decoding_uses_it(window_student, fotaq_dev_records):
    assert json.loads((window_student / "config.json").read_text())["speechkd_encoder_window"] == "audio"
    assert json.loads((window_student / "speechkd.json").read_text())["encoder_window"] == "audio"
    student, processor = load_model(str(window_student), device="cpu")
    assert isinstance(student.get_encoder(), AudioWindowEncoder)
    frames = _encoder_inputs(student)
    audios = [load_audio(r["audio"]) for r in fotaq_dev_records[:2]]
    options = DecodingOptions(batch_size=2, max_new_tokens=8, token_timestamps=True, return_timestamps=True)
    results = decode_short_form(student, processor, audios, options)
    assert frames == [window_frames(student, max(r.duration for r in results))] and frames[0] < 3000
    assert all(r.token_times is not None and len(r.token_times) == len(r.tokens) + 1 for r in results)


def test_training_step_encodes_the_batch_window(window_student):
    student, processor = load_model(str(window_student), device="cpu")
    frames = _encoder_inputs(student)
    tokens = processor.tokenizer("<|startoftranscript|><|notimestamps|> hello there<|endoftext|>").input_ids
    inputs, labels = pad_sequences([(tokens, 2), (tokens, 2)], pad_id=tokens[-1])
    batch = Batch(["a", "b"], inputs, labels, features=torch.randn(2, 80, 3000), durations=[2.0, 3.4])
    terms = batch_losses(
        student.train(), Models(student, None, processor, False, []), batch, LossWeights(1, 0, 1, 0)
    )
    terms.loss.backward()
    assert frames == [600]
    assert student.get_encoder().layers[0].fc1.weight.grad is not None


def test_create_student_rejects_an_unknown_window(tiny_en_dir, tmp_path, capsys):
    args = ["create-student", "--teacher", str(tiny_en_dir), "--output-dir", str(tmp_path / "s")]
    with pytest.raises(SystemExit):
        main([*args, "--encoder-window", "short"])
    assert "invalid choice" in capsys.readouterr().err


def test_pseudo_label_keeps_no_encoder_cache_for_a_window_teacher(window_student, tmp_path, capsys):
    from types import SimpleNamespace

    from speechkd.pseudo_label import open_encoder_cache

    model, _ = load_model(str(window_student), device="cpu")
    config = SimpleNamespace(teacher=str(window_student), encoder_cache_dir=str(tmp_path))
    assert open_encoder_cache(config, model) is None
    assert "not cached" in capsys.readouterr().err
    set_window(model, "padded")
    assert open_encoder_cache(config, model) is not None
