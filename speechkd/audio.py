"""The one audio loader: any file soundfile (or, failing that, librosa) can read -> float32 mono 16 kHz."""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000
_MISLEADING = (
    "File does not exist or is not a regular file (possibly a pipe?)."  # libsndfile, on any bad file
)


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
    _check_wav_length(path)
    with _decoder_messages(path) as messages:
        try:
            samples, file_rate = sf.read(path, dtype="float32", always_2d=True)
            samples = samples.mean(axis=1)
        except (sf.SoundFileError, OSError) as error:
            cause = str(error).replace(_MISLEADING, "libsndfile cannot decode it.")
            if messages.text():
                cause += f" (decoder: {messages.summary()})"
            samples, file_rate = _load_with_librosa(path, soundfile_error=cause)
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


class _Captured:
    """What a C decoder wrote to the process's stderr while one file was read."""

    def __init__(self, handle):
        self.handle = handle

    def text(self) -> str:
        self.handle.seek(0)
        return self.handle.read().decode("utf-8", "replace").strip()

    def summary(self) -> str:
        lines = self.text().splitlines()
        first = lines[0].strip() if lines else ""
        return first if len(lines) < 2 else f"{first} (and {len(lines) - 1} more lines)"


@contextlib.contextmanager
def _decoder_messages(path: str | os.PathLike) -> Iterator[_Captured]:
    """Collect what libsndfile / mpg123 print to stderr, and repeat it once, naming the file."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters): nothing to capture
        yield _Captured(tempfile.TemporaryFile())
        return
    with tempfile.TemporaryFile() as handle:
        sys.stderr.flush()
        os.dup2(handle.fileno(), 2)
        captured = _Captured(handle)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        if captured.text():
            print(f"speechkd: {path}: the audio decoder reported: {captured.summary()}", file=sys.stderr)


def _check_wav_length(path: str | os.PathLike) -> None:
    """A WAV whose header promises more data than the file holds is truncated: refuse it, do not cut it."""
    if not str(path).lower().endswith(".wav"):
        return
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                break
            handle.seek(length + (length & 1), os.SEEK_CUR)
        held = size - handle.tell()
    if length not in (0, 0xFFFFFFFF) and length > held:  # 0 / 0xFFFFFFFF: written by a stream, size unknown
        raise AudioError(
            path,
            f"truncated: its header promises {length} bytes of samples but the file holds {held} "
            f"({100 * held / length:.0f} %); re-export it or drop it from the manifest",
        )


def _check_is_file(path: str | os.PathLike) -> None:
    if not Path(path).exists():
        raise AudioError(path, "no such file; check the path (manifest paths are relative to the manifest)")
    if not Path(path).is_file():
        raise AudioError(path, "this is a directory, not an audio file")


def _load_with_librosa(path: str | os.PathLike, soundfile_error: str) -> tuple[np.ndarray, int]:
    # librosa reaches formats libsndfile lacks (e.g. m4a) through audioread/ffmpeg; imported lazily
    # because it is slow to import and rarely needed.
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that it is falling back to audioread
            with _decoder_messages(path):
                samples, file_rate = librosa.load(path, sr=None, mono=True, dtype=np.float32)
    except Exception as error:
        librosa_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        cause = f"unreadable or corrupt (soundfile: {soundfile_error}; librosa: {librosa_error})"
        raise AudioError(path, f"{cause}; re-encode it as WAV or FLAC") from error
    return samples, int(file_rate)
