"""The one audio loader: any file soundfile (or, failing that, librosa) can read -> float32 mono 16 kHz."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000


class AudioError(Exception):
    """An audio file could not be loaded; the message names the file and the cause."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot load audio {self.path}: {cause}")

    def __reduce__(self):  # keeps the error picklable across data-loader workers
        return AudioError, (self.path, self.cause)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as float32 mono samples at `sample_rate` Hz."""
    _check_is_file(path)
    try:
        samples, file_rate = sf.read(path, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
    except (sf.SoundFileError, OSError) as error:
        samples, file_rate = _load_with_librosa(path, soundfile_error=error)
    if samples.size == 0:
        raise AudioError(path, "the file holds no samples (0 frames); drop it from the manifest")
    if not np.isfinite(samples).all():
        raise AudioError(path, "the file holds NaN or infinite samples; re-export it or drop it")
    if file_rate != sample_rate:
        samples = soxr.resample(samples, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)


def audio_duration(path: str | os.PathLike) -> float:
    """Length of an audio file in seconds, read from its header where possible."""
    _check_is_file(path)
    try:
        return float(sf.info(path).duration)
    except (sf.SoundFileError, OSError):
        return len(load_audio(path)) / SAMPLE_RATE


def _check_is_file(path: str | os.PathLike) -> None:
    if not Path(path).exists():
        raise AudioError(path, "no such file; check the path (manifest paths are relative to the manifest)")
    if not Path(path).is_file():
        raise AudioError(path, "this is a directory, not an audio file")


def _load_with_librosa(path: str | os.PathLike, soundfile_error: Exception) -> tuple[np.ndarray, int]:
    # librosa reaches formats libsndfile lacks (e.g. m4a) through audioread/ffmpeg; imported lazily
    # because it is slow to import and rarely needed.
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that it is falling back to audioread
            samples, file_rate = librosa.load(path, sr=None, mono=True, dtype=np.float32)
    except Exception as error:
        librosa_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        cause = f"unreadable or corrupt (soundfile: {soundfile_error}; librosa: {librosa_error})"
        raise AudioError(path, f"{cause}; re-encode it as WAV or FLAC") from error
    return samples, int(file_rate)
