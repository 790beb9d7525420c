"""pocketsphinx-testdata: five LibriVox sentences (Sense and Sensibility, ch. 1), 16 kHz WAV with transcripts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import soundfile as sf

from speechkd.corpora import (
    CORPORA,
    MARKER_NAME,
    CorpusError,
    finished_corpus,
    summarise,
    write_jsonl,
    write_marker,
)
from speechkd.corpora.debian import unpacked_package

CORPUS = CORPORA["pocketsphinx"]
LIBRIVOX = Path("usr/share/pocketsphinx/test/data/librivox")
# A Sphinx transcription line: "<s> words </s> (utterance-id)"
_TRANSCRIPT_LINE = re.compile(r"^(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def read_transcription(path: Path) -> dict[str, str]:
    """Utterance id -> text from a Sphinx `transcription` file."""
    texts = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _TRANSCRIPT_LINE.match(line)
        if match is None:
            raise CorpusError(f"{path}:{number}: not a '<s> text </s> (id)' line: {line!r}")
        texts[match["id"]] = " ".join(match["text"].split())
    return texts


def prepare(
    output_dir: Path, deb: Path | None = None, overwrite: bool = False, limit: int | None = None
) -> dict:
    """Copy the LibriVox WAVs to `output_dir/audio/` and write `test.jsonl` with their transcripts."""
    output_dir = Path(output_dir)
    manifests = {"test": output_dir / "test.jsonl"}
    marker = {"corpus": CORPUS.name, "limit": limit}
    if not overwrite and finished_corpus(output_dir, manifests, marker):
        return summarise(CORPUS.name, output_dir, manifests, reused=True)
    (output_dir / MARKER_NAME).unlink(missing_ok=True)
    (output_dir / "audio").mkdir(parents=True, exist_ok=True)
    with unpacked_package(CORPUS.debian_package, deb, search_dirs=[output_dir]) as root:
        source = root / LIBRIVOX
        if not (source / "transcription").is_file():
            raise CorpusError(f"the package has no {LIBRIVOX}/transcription: is it {CORPUS.debian_package}?")
        texts = read_transcription(source / "transcription")
        records = [
            _copy_utterance(source, utterance_id, text, output_dir) for utterance_id, text in texts.items()
        ]
    records.sort(key=lambda record: record["id"])
    write_jsonl(manifests["test"], records[:limit])
    write_marker(output_dir, marker)
    return summarise(CORPUS.name, output_dir, manifests, reused=False)


def _copy_utterance(source: Path, utterance_id: str, text: str, output_dir: Path) -> dict:
    wav = source / f"{utterance_id}.wav"
    try:
        info = sf.info(wav)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise CorpusError(f"cannot read {wav} (utterance {utterance_id}): {error}") from error
    shutil.copyfile(wav, output_dir / "audio" / wav.name)
    return {
        "id": utterance_id,
        "audio": f"audio/{wav.name}",
        "text": text,
        "duration": round(info.frames / info.samplerate, 3),
    }
