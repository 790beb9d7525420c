import io
import json
import os

import datasets
import numpy as np
import pytest
import soundfile as sf

from speechkd.audio import load_audio
from speechkd.files import atomic_write_json, atomic_write_text
from speechkd.manifest import (
    ManifestError,
    read_manifest,
    records_from_dataset,
    write_manifest,
)


def tone(seconds: float = 0.25, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def audio_bytes(samples: np.ndarray, audio_format: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format=audio_format)
    return buffer.getvalue()


def write_lines(path, *lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- reading


def test_read_resolves_audio_against_the_manifest_folder_and_fills_in_ids(tmp_path, monkeypatch):
    manifest = write_lines(
        tmp_path / "corpus" / "train.jsonl",
        '{"audio": "clips/a.wav", "text": "hello", "speaker": "s1", "snr": 12.5}',
        "",
        '{"audio": "/data/b.flac", "id": "b", "duration": 1.5}',
    )
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory

    first, second = read_manifest(manifest)

    assert first == {
        "audio": str(tmp_path / "corpus" / "clips" / "a.wav"),
        "id": "clips/a",
        "text": "hello",
        "speaker": "s1",
        "snr": 12.5,
    }
    assert second == {"audio": "/data/b.flac", "id": "b", "duration": 1.5}


@pytest.mark.parametrize(
    ("bad_line", "cause"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"text": "no audio"}', "missing required field 'audio'"),
        ('{"audio": ""}', "'audio' must be a non-empty string"),
        ('{"audio": 3}', "'audio' must be a non-empty string"),
        ('{"audio": "x.wav", "text": 3}', "'text' must be a string"),
        ('{"audio": "x.wav", "speaker": 17}', "'speaker' must be a string"),
        ('{"audio": "x.wav", "id": ""}', "'id' must not be empty"),
        ('{"audio": "x.wav", "id": "   "}', "'id' must not be empty or blank"),
        ('{"audio": "x.wav", "duration": -1}', "'duration' must be a number"),
        ('{"audio": "x.wav", "duration": "2.0"}', "'duration' must be a number"),
    ],
)
def test_bad_lines_are_reported_with_file_and_line_number(tmp_path, bad_line, cause):
    manifest = write_lines(tmp_path / "m.jsonl", '{"audio": "ok.wav"}', "", bad_line)

    with pytest.raises(ManifestError) as caught:
        read_manifest(manifest)

    message = str(caught.value)
    assert str(manifest) in message and "line 3" in message and cause in message
    assert caught.value.line == 3


def test_duplicate_ids_name_both_lines(tmp_path):
    manifest = write_lines(
        tmp_path / "m.jsonl",
        '{"audio": "a.wav"}',
        '{"audio": "b.wav"}',
        '{"audio": "other/a.wav", "id": "a"}',
    )

    with pytest.raises(ManifestError, match=r"line 3: duplicate id 'a' \(first used on line 1\)"):
        read_manifest(manifest)


def test_a_missing_manifest_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------------- writing


def test_round_trip_keeps_every_field_and_writes_portable_paths(tmp_path):
    records = [
        {
            "id": "u1",
            "audio": str(tmp_path / "out" / "clips" / "u1.wav"),
            "text": "hi",
            "extra": {"k": [1, 2]},
        },
        {"id": "u2", "audio": str(tmp_path / "audio" / "u2.flac"), "wer": 0.25, "kept": False},
        {"id": "u3", "audio": "/elsewhere/u3.wav", "teacher_text": "ünïcode"},
    ]
    manifest = tmp_path / "out" / "nested" / "labelled.jsonl"

    write_manifest(manifest, records)

    written = [json.loads(line)["audio"] for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert written == ["../clips/u1.wav", "../../audio/u2.flac", "/elsewhere/u3.wav"]
    assert read_manifest(manifest) == records


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [{"audio": str(tmp_path / "a.wav")}])
    before = manifest.read_text()

    with pytest.raises(ManifestError, match="record 1 .* has no 'audio' path"):
        write_manifest(manifest, [{"audio": str(tmp_path / "b.wav")}, {"id": "broken"}])

    assert manifest.read_text() == before
    assert os.listdir(tmp_path) == ["m.jsonl"]


def test_atomic_text_and_json_helpers_replace_whole_files(tmp_path):
    summary = tmp_path / "run" / "metrics.json"
    atomic_write_json(summary, {"wer": 0.1})
    atomic_write_json(summary, {"wer": 0.05, "note": "é"})
    atomic_write_text(tmp_path / "run" / "done.txt", "finished\n")

    assert json.loads(summary.read_text(encoding="utf-8")) == {"wer": 0.05, "note": "é"}
    assert (tmp_path / "run" / "done.txt").read_text() == "finished\n"
    assert sorted(os.listdir(tmp_path / "run")) == ["done.txt", "metrics.json"]


# ---------------------------------------------------------------------------- Hugging Face datasets


def as_audio_dataset(columns: dict) -> datasets.Dataset:
    return datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(decode=False))


def test_saved_dataset_built_from_audio_file_paths(tmp_path):
    paths = [tmp_path / "clips" / f"utt{i}.wav" for i in range(2)]
    paths[0].parent.mkdir()
    for path in paths:
        sf.write(path, tone(), 16000)
    columns = {"audio": [str(p) for p in paths], "text": ["one", "two"], "speaker_id": [7, 8]}
    as_audio_dataset(columns).save_to_disk(tmp_path / "saved")  # embeds the files' bytes

    cache = tmp_path / "cache"
    records = records_from_dataset(tmp_path / "saved", speaker_column="speaker_id", cache_dir=cache)

    assert records == [
        {"id": "utt0", "audio": str(cache / "utt0.wav"), "text": "one", "speaker": "7"},
        {"id": "utt1", "audio": str(cache / "utt1.wav"), "text": "two", "speaker": "8"},
    ]
    assert np.array_equal(load_audio(records[1]["audio"]), load_audio(paths[1]))


def test_saved_dataset_with_embedded_bytes_is_written_once_to_the_cache(tmp_path):
    columns = {
        "audio": [
            {"bytes": audio_bytes(tone(hz=300), "FLAC"), "path": None},
            {"bytes": audio_bytes(tone(hz=500), "WAV"), "path": "gone/utt-b.wav"},
        ],
        "transcript": ["first", "second"],
        "key": ["a", "b"],
    }
    as_audio_dataset(columns).save_to_disk(tmp_path / "saved")

    cache = tmp_path / "cache"
    options = {"text_column": "transcript", "id_column": "key", "cache_dir": cache}
    records = records_from_dataset(tmp_path / "saved", **options)
    first_write = (cache / "a.flac").stat().st_mtime_ns
    records_again = records_from_dataset(tmp_path / "saved", **options)

    # the suffix comes from the stored file name, or else from the bytes themselves
    assert [r["audio"] for r in records] == [str(cache / "a.flac"), str(cache / "b.wav")]
    assert [r["text"] for r in records] == ["first", "second"]
    assert np.allclose(load_audio(records[0]["audio"]), tone(hz=300), atol=1e-3)
    assert records_again == records
    assert (cache / "a.flac").stat().st_mtime_ns == first_write


def test_parquet_folder_with_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHKD_HOME", str(tmp_path / "home"))
    folder = tmp_path / "parquet"
    folder.mkdir()
    for split in ("train", "test"):
        audio = {"bytes": audio_bytes(tone(), "WAV"), "path": f"{split}-1.wav"}
        columns = {"audio": [audio], "text": [split]}
        as_audio_dataset(columns).to_parquet(folder / f"{split}-00000-of-00001.parquet")

    with pytest.raises(ManifestError, match=r"no split chosen; choose one of \['train', 'test'\]"):
        records_from_dataset(folder)
    (record,) = records_from_dataset(folder, split="test")

    assert record["id"] == "test-1" and record["text"] == "test"
    assert record["audio"].startswith(str(tmp_path / "home" / "datasets"))
    assert load_audio(record["audio"]).shape == (4000,)


def test_audiofolder_with_metadata(tmp_path):
    (tmp_path / "clips").mkdir()
    sf.write(tmp_path / "clips" / "a.flac", tone(), 16000)
    write_lines(tmp_path / "metadata.csv", "file_name,text", "clips/a.flac,hello there")

    (record,) = records_from_dataset(tmp_path)

    # the files already on disk are used where they are
    assert record == {"id": "a", "audio": str(tmp_path / "clips" / "a.flac"), "text": "hello there"}


def test_missing_columns_name_the_dataset_and_the_columns_it_has(tmp_path):
    columns = {"audio": [{"bytes": audio_bytes(tone(), "WAV"), "path": None}], "sentence": ["hi"]}
    as_audio_dataset(columns).save_to_disk(tmp_path / "saved")

    with pytest.raises(ManifestError) as caught:
        records_from_dataset(tmp_path / "saved")

    message = str(caught.value)
    assert str(tmp_path / "saved") in message and "no column 'text'" in message and "'sentence'" in message
