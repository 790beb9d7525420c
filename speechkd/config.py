"""Stage configs as frozen dataclasses, built from a YAML/JSON file and/or CLI flags (flags win)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or value is invalid."""


def load_config_file(path: str | Path, section: str | None = None) -> dict[str, Any]:
    """Read a YAML or JSON mapping; with SECTION, return that sub-mapping (empty if absent)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from error
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}"
        ) from error
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if section is not None:
        data = data.get(section) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
    return {key.replace("-", "_"): value for key, value in data.items()}


def build_config(
    cls: type[T], file_values: dict[str, Any], flag_values: dict[str, Any], source: str = ""
) -> T:
    """CLS from file values overridden by flags that were given (None means not given)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(file_values) - names)
    if unknown:
        raise ConfigError(
            f"{source or cls.__name__}: unknown key(s) {', '.join(unknown)}; known: {sorted(names)}"
        )
    values = dict(file_values)
    values.update({k: v for k, v in flag_values.items() if k in names and v is not None})
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{source or cls.__name__}: {error}") from error


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def check_section(cls: type, values: dict[str, Any], source: str) -> None:
    """Validate a config section against CLS without building it: known keys, values of the declared kinds."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {sorted(fields)}")
    for key, value in values.items():
        kinds = _kinds(str(fields[key].type))
        if value is not None and kinds and not isinstance(value, kinds):
            raise ConfigError(f"{source}: {key} = {value!r} should be {fields[key].type}")


def _kinds(annotation: str) -> tuple[type, ...]:
    """Python types named in a simple annotation string ('int', 'float | None', 'list[str]' ...)."""
    names = {
        "int": (int,),
        "float": (int, float),
        "str": (str,),
        "bool": (bool,),
        "list": (list,),
        "tuple": (list,),
    }
    kinds: tuple[type, ...] = ()
    for part in annotation.replace(" ", "").split("|"):
        base = part.split("[", 1)[0]
        if base not in names and base != "None":
            return ()  # a type this check does not understand: accept the value
        kinds += names.get(base, ())
    return kinds
