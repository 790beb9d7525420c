"""Flight of the Amazon Queen: the game's speech resources, labelled with the text of its dialogue files.

Format facts: the README's "Data" section and the comments below. A dialogue line with index i of the dialogue
with talk key k is voiced as "%2d%4x" % (k, i) + P (the character) or J (Joe) + the segment number.
Index 0 holds the greetings, voiced under other names; checked against all 73 dialogues (the id sets
match exactly): `kkSSSSJn` is Joe's entry 0 (his opening line), `kkXXXXJn` is the character's entry 0
(Joe's "talk again" line: Joe says it), `kkXXXXPn` is the first string at person2Ptr (the character's
answer). A text of "0" means "no line". Text keeps the game's case and punctuation, minus sound tags
such as `<koff>` and the `^_` trademark glyph; a segment left empty is unlabelled.

Splits are fixed by character (offline-assets.md): lines of reserved characters, and any speech of
their dialogues, are left out of every manifest. A speech id claimed by two different texts or by
dialogues of two splits keeps no text (it goes to `unlabelled`, or nowhere if a reserved dialogue
claims it); this does not happen in package 1.0.0-9 except for reserved LARIS lines.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from speechkd.corpora import (
    CORPORA,
    MARKER_NAME,
    CorpusError,
    finished_corpus,
    read_jsonl,
    summarise,
    write_jsonl,
    write_marker,
)
from speechkd.corpora.debian import unpacked_package

CORPUS = CORPORA["fotaq"]
SPLITS = CORPUS.splits
QUEEN_1C = Path("usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")
COMMITTED_DIR = Path(__file__).parents[2] / "data_manifests" / "fotaq"

TRAIN_CHARACTERS = frozenset(
    "BOB TAM JIM CHIEF SEC APE HENRY KLUNK ZOMBIE PRIN IAN FRANK AND JOHN WEDGE".split()
)
DEV_CHARACTERS = frozenset("FAYE LOU NAOMI CHEF TALLPYG".split())
JOE = "JOE"

_TABLE_OFFSET = 15
_ENTRY_SIZE = 21
_DOG_HEADER = 20  # "AmBk" bank header before the dialogue data
_SOUND_TAG = re.compile(r"<[a-z]+>")  # <koff>, <hack>, <ahem>
_TRADEMARK_GLYPH = "^_"
_DIALOGUE_SPEECH_ID = re.compile(r"^(\d\d)([0-9A-F]{4}|SSSS|XXXX)([PJ])[0-9A-F]$")


@dataclass(frozen=True)
class Dialogue:
    """One `*.DOG` resource: the character's lines and Joe's lines, each as (index, raw text)."""

    name: str
    character: str
    talk_key: int
    person_lines: tuple[tuple[int, str], ...]
    joe_lines: tuple[tuple[int, str], ...]
    person_greeting: str  # the character's answer when Joe talks to them again

    @property
    def split(self) -> str | None:
        """'train' or 'dev', or None for a character reserved for external evaluation."""
        if self.character in TRAIN_CHARACTERS:
            return "train"
        return "dev" if self.character in DEV_CHARACTERS else None


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str | None
    speaker: str | None
    split: str


class ResourceArchive:
    """The `queen.1c` resource bundle: a table of named resources (big-endian) followed by their bytes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._data = self.path.read_bytes()
        except OSError as error:
            raise CorpusError(f"cannot read {self.path}: {error}") from error
        self.entries = self._parse_table()

    def _parse_table(self) -> dict[str, tuple[int, int]]:
        data = self._data
        if len(data) < _TABLE_OFFSET or data[:4] != b"QTBL":
            raise CorpusError(f"{self.path} is not a Queen resource bundle (no QTBL header)")
        if data[12] != 1:
            raise CorpusError(f"{self.path}: speech compression {data[12]} is not MP3 (1)")
        (count,) = struct.unpack_from(">H", data, 13)
        if _TABLE_OFFSET + count * _ENTRY_SIZE > len(data):
            raise CorpusError(f"{self.path}: truncated resource table ({count} entries)")
        entries = {}
        for i in range(count):
            pos = _TABLE_OFFSET + i * _ENTRY_SIZE
            name = data[pos : pos + 12].split(b"\0", 1)[0].decode("latin-1")
            offset, size = struct.unpack_from(">II", data, pos + 13)
            if offset + size > len(data):
                raise CorpusError(f"{self.path}: resource {name} lies past the end of the file")
            entries[name] = (offset, size)
        return entries

    def read(self, name: str) -> bytes:
        offset, size = self.entries[name]
        return self._data[offset : offset + size]

    def speech_ids(self) -> list[str]:
        return sorted(name[: -len(".SB")] for name in self.entries if name.endswith(".SB"))

    def dialogues(self) -> list[Dialogue]:
        return [
            parse_dialogue(name, self.read(name)) for name in sorted(self.entries) if name.endswith(".DOG")
        ]


def parse_dialogue(name: str, data: bytes) -> Dialogue:
    """Read the header, the character's lines and Joe's lines of one `*.DOG` resource."""
    body = data[_DOG_HEADER:]
    try:
        level_max, _unique_key, talk_key, joe_max, person_max = struct.unpack_from(">5h", body, 0)
        person_ptr, _cutaway_ptr, person2_ptr = struct.unpack_from(">3H", body, 22)
        person_lines = _read_lines(body, person_ptr, person_max)
        joe_lines = _read_lines(body, 32 + abs(level_max) * 96, joe_max)
        greeting = body[person2_ptr + 1 : person2_ptr + 1 + body[person2_ptr]].decode("latin-1")
    except (struct.error, IndexError) as error:
        raise CorpusError(f"dialogue {name} is truncated or corrupt ({error})") from error
    character = re.sub(r"\d", "", name.rsplit(".", 1)[0])
    return Dialogue(name, character, talk_key, person_lines, joe_lines, greeting)


def _read_lines(body: bytes, pos: int, count: int) -> tuple[tuple[int, str], ...]:
    """`count` entries: 2 skipped bytes, i16 index, length-prefixed latin-1 text padded to 4 bytes."""
    lines = []
    for _ in range(count):
        (index,) = struct.unpack_from(">h", body, pos + 2)
        length = body[pos + 4]
        text = body[pos + 5 : pos + 5 + length]
        if len(text) != length:
            raise IndexError(f"line at byte {pos} runs past the end")
        lines.append((index, text.decode("latin-1")))
        pos += 4 + (1 + length + 3) // 4 * 4
    return tuple(lines)


def split_segments(text: str) -> list[str]:
    """Split a line at its `*NN` speech commands (`*XY` carries 11 more characters); one entry per segment."""
    segments, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "*":
            segments.append(text[start:i])
            i += 3 + (11 if text[i + 1 : i + 3] == "XY" else 0)
            start = i
        else:
            i += 1
    if start < len(text):
        segments.append(text[start:])
    return segments


def clean_text(segment: str) -> str:
    """Drop what is not said (`<koff>`-style sound tags, the `^_` trademark glyph); collapse whitespace."""
    return " ".join(_SOUND_TAG.sub(" ", segment.replace(_TRADEMARK_GLYPH, "")).split())


def dialogue_speech(dialogue: Dialogue) -> Iterator[tuple[str, str, str]]:
    """(speech id, cleaned text, speaker) for every non-empty segment of a dialogue's lines."""
    key = f"{dialogue.talk_key:2d}".replace(" ", "0")
    voiced = [(f"{key}XXXXP", dialogue.person_greeting, dialogue.character)]
    for index, text in dialogue.person_lines:
        prefix = f"{key}XXXXJ" if index == 0 else f"{key}{index:4x}P".replace(" ", "0").upper()
        voiced.append((prefix, text, JOE if index == 0 else dialogue.character))
    for index, text in dialogue.joe_lines:
        prefix = f"{key}SSSSJ" if index == 0 else f"{key}{index:4x}J".replace(" ", "0").upper()
        voiced.append((prefix, text, JOE))
    for prefix, text, speaker in voiced:
        if text.strip() == "0":
            continue
        for number, segment in enumerate(split_segments(text), start=1):
            cleaned = clean_text(segment)
            if cleaned:
                yield f"{prefix}{number:X}", cleaned, speaker


def assign_splits(archive: ResourceArchive) -> dict[str, list[Utterance]]:
    """Every usable speech resource, labelled where its text is known, per split, sorted by id."""
    dialogues = archive.dialogues()
    by_key = {dialogue.talk_key: dialogue for dialogue in dialogues}
    claims: dict[str, set[tuple[str, str, str | None]]] = {}
    for dialogue in dialogues:
        for speech_id, text, speaker in dialogue_speech(dialogue):
            claims.setdefault(speech_id, set()).add((text, speaker, dialogue.split))
    splits: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    for speech_id in archive.speech_ids():
        claimed = claims.get(speech_id, set())
        if any(split is None for _, _, split in claimed):
            continue  # a reserved character's line
        match = _DIALOGUE_SPEECH_ID.match(speech_id)
        dialogue = by_key.get(int(match.group(1))) if match else None
        if dialogue is not None and dialogue.split is None:
            continue  # unmatched speech from a reserved character's dialogue
        if len(claimed) == 1:
            text, speaker, split = next(iter(claimed))
            splits[split].append(Utterance(speech_id, text, speaker, split))
            continue
        speaker = None
        if dialogue is not None and not claimed:
            speaker = JOE if match.group(3) == "J" else dialogue.character
        splits["unlabelled"].append(Utterance(speech_id, None, speaker, "unlabelled"))
    return splits


def prepare(
    output_dir: Path, deb: Path | None = None, overwrite: bool = False, limit: int | None = None
) -> dict:
    """Write `audio/<ID>.mp3` and train/dev/unlabelled manifests into `output_dir`; return the summary."""
    output_dir = Path(output_dir)
    manifests = {split: output_dir / f"{split}.jsonl" for split in SPLITS}
    marker = {"corpus": CORPUS.name, "limit": limit}
    if not overwrite and finished_corpus(output_dir, manifests, marker):
        return summarise(CORPUS.name, output_dir, manifests, reused=True)
    with unpacked_package(CORPUS.debian_package, deb, search_dirs=[output_dir]) as root:
        if not (root / QUEEN_1C).is_file():
            raise CorpusError(f"the package has no {QUEEN_1C}: is it really {CORPUS.debian_package}?")
        archive = ResourceArchive(root / QUEEN_1C)
    splits = assign_splits(archive)
    check_committed(splits)
    if limit is not None:
        splits = {split: utterances[:limit] for split, utterances in splits.items()}
    (output_dir / MARKER_NAME).unlink(missing_ok=True)
    durations = write_audio(archive, [u for us in splits.values() for u in us], output_dir, overwrite)
    for split, utterances in splits.items():
        write_jsonl(manifests[split], [manifest_record(u, durations[u.id]) for u in utterances])
    write_marker(output_dir, marker)
    return summarise(CORPUS.name, output_dir, manifests, reused=False)


def manifest_record(utterance: Utterance, duration: float) -> dict:
    record: dict = {"id": utterance.id, "audio": f"audio/{utterance.id}.mp3"}
    if utterance.text is not None:
        record["text"] = utterance.text
    if utterance.speaker is not None:
        record["speaker"] = utterance.speaker
    record["duration"] = duration
    return record


def check_committed(splits: dict[str, list[Utterance]], committed_dir: Path = COMMITTED_DIR) -> None:
    """Fail when the ids, texts or speakers differ from the manifests committed with this checkout."""
    paths = {split: committed_dir / f"{split}.jsonl" for split in SPLITS}
    if not all(path.is_file() for path in paths.values()):
        return  # an installed package without the repository's data_manifests/
    for split, path in paths.items():
        committed = {r["id"]: (r.get("text"), r.get("speaker")) for r in read_jsonl(path)}
        fresh = {u.id: (u.text, u.speaker) for u in splits[split]}
        if committed != fresh:
            changed = sorted(k for k in committed.keys() & fresh.keys() if committed[k] != fresh[k])
            raise CorpusError(
                f"the {split} split built from this package differs from {path}: "
                f"{len(committed.keys() - fresh.keys())} ids missing, {len(fresh.keys() - committed.keys())} "
                f"new, {len(changed)} with other text/speaker (e.g. {changed[:3]}). The package version "
                f"changed: use flight-of-the-amazon-queen 1.0.0-9 (--deb PATH), or review and re-commit "
                f"the manifests."
            )


def write_audio(
    archive: ResourceArchive, utterances: list[Utterance], output_dir: Path, overwrite: bool
) -> dict[str, float]:
    """Write each utterance's MP3 as `audio/<ID>.mp3` (skipping intact ones); return durations in seconds."""
    audio_dir = output_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    durations = {}
    for utterance in tqdm(utterances, desc="fotaq audio", unit="file"):
        data = archive.read(f"{utterance.id}.SB")
        path = audio_dir / f"{utterance.id}.mp3"
        if overwrite or not path.is_file() or path.stat().st_size != len(data):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        durations[utterance.id] = mp3_duration(data, f"speech {utterance.id} in {archive.path}")
    return durations


def mp3_duration(data: bytes, where: str) -> float:
    """Seconds of audio, from the decoded frame count (the header estimate is off by up to ~0.02 s)."""
    try:
        audio, sample_rate = sf.read(io.BytesIO(data), dtype="int16")
    except (sf.LibsndfileError, RuntimeError) as error:
        raise CorpusError(f"{where}: cannot decode MP3 ({error})") from error
    if len(audio) == 0:
        raise CorpusError(f"{where}: MP3 decodes to no audio")
    return round(len(audio) / sample_rate, 3)
