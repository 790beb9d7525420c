import re

import numpy as np
import pytest
import soundfile as sf

from speechkd.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio


def tone(seconds: float = 0.5, rate: int = SAMPLE_RATE, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("extension", ["wav", "flac", "ogg"])
def test_loads_common_formats_as_float32_mono_16k(tmp_path, extension):
    path = tmp_path / f"speech.{extension}"
    sf.write(path, tone(), SAMPLE_RATE)

    samples = load_audio(path)

    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - SAMPLE_RATE // 2) < 200  # lossy codecs may pad a little
    assert 0.4 < np.abs(samples).max() < 0.6


def test_loads_mp3(tmp_path):
    path = tmp_path / "speech.mp3"
    try:
        sf.write(path, tone(), SAMPLE_RATE, format="MP3")
    except (sf.SoundFileError, TypeError, ValueError) as error:
        pytest.skip(f"this libsndfile cannot write MP3: {error}")

    samples = load_audio(path)

    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - SAMPLE_RATE // 2) < 2000  # MP3 frames add encoder delay and padding


def test_resamples_and_downmixes_a_44k_stereo_file(tmp_path):
    path = tmp_path / "stereo.wav"
    left = tone(seconds=1.0, rate=44100)
    sf.write(path, np.stack([left, left], axis=1), 44100)

    samples = load_audio(path)

    assert samples.shape == (SAMPLE_RATE,)
    assert samples.dtype == np.float32
    assert 0.45 < np.abs(samples).max() < 0.55


def test_loads_at_another_sample_rate(tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, tone(seconds=1.0), SAMPLE_RATE)

    assert load_audio(path, sample_rate=8000).shape == (8000,)


def test_duration_comes_from_the_header(tmp_path):
    path = tmp_path / "speech.flac"
    sf.write(path, tone(seconds=1.5, rate=22050), 22050)

    assert audio_duration(path) == pytest.approx(1.5)
    assert audio_duration(str(path)) == pytest.approx(1.5)


def write_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4000))


def write_truncated_wav(path):
    sf.write(path, tone(), SAMPLE_RATE)
    path.write_bytes(path.read_bytes()[:30])  # cut inside the header


def write_empty_wav(path):
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)


def write_nan_wav(path):
    samples = tone()
    samples[100] = np.nan
    sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")


def write_inf_wav(path):
    samples = tone()
    samples[-1] = np.inf
    sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")


@pytest.mark.parametrize(
    ("make_file", "cause"),
    [
        (lambda path: None, "no such file"),
        (lambda path: path.mkdir(), "directory"),
        (write_random_bytes, "corrupt"),
        (write_truncated_wav, "corrupt"),
        (write_empty_wav, "no samples"),
        (write_nan_wav, "NaN or infinite"),
        (write_inf_wav, "NaN or infinite"),
    ],
    ids=["missing", "directory", "random-bytes", "truncated", "empty", "nan", "inf"],
)
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, make_file, cause):
    path = tmp_path / "bad.wav"
    make_file(path)

    with pytest.raises(AudioError, match=cause) as caught:
        load_audio(path)

    assert str(path) in str(caught.value)
    assert caught.value.path == str(path)


def test_duration_of_a_missing_or_corrupt_file_raises_audio_error(tmp_path):
    missing, corrupt = tmp_path / "missing.flac", tmp_path / "corrupt.wav"
    write_random_bytes(corrupt)

    for path in (missing, corrupt):
        with pytest.raises(AudioError, match=re.escape(str(path))):
            audio_duration(path)


def test_a_wav_shorter_than_its_header_says_is_refused_as_truncated(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, tone(3.0), SAMPLE_RATE, subtype="PCM_16")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + (len(data) - 44) // 3])  # the header still claims 3 s

    with pytest.raises(AudioError, match=r"cut\.wav: truncated: its header promises 96000 bytes .* 32000"):
        load_audio(cut)
    assert len(load_audio(whole)) == 3 * SAMPLE_RATE


def test_a_corrupt_mp3_is_reported_once_naming_the_file(tmp_path, fotaq_dev_records, capfd):
    data = bytearray(open(fotaq_dev_records[0]["audio"], "rb").read())
    for i in range(len(data) // 3, len(data) // 3 + 400):
        data[i] = 0x55  # garbage in the middle of the stream: mpg123 resyncs and complains
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(bytes(data))

    load_audio(broken)

    err = capfd.readouterr().err
    assert err.count("Illegal Audio-MPEG-Header") == 1
    assert f"speechkd: {broken}: the audio decoder reported: " in err


def test_an_undecodable_file_does_not_claim_to_be_missing(tmp_path):
    path = tmp_path / "noise.mp3"
    path.write_bytes(b"ID3" + bytes(range(256)) * 20)

    with pytest.raises(AudioError) as caught:
        load_audio(path)
    assert "does not exist" not in str(caught.value) and "noise.mp3" in str(caught.value)
