"""Stage configs as frozen dataclasses, built from a YAML/JSON file and/or CLI flags (flags win).

A config may hold other config dataclasses (a stage config holds a `DecodingOptions`). Each option has a
flat name, the one its flag and an old flat YAML key use (`batch_size`, or `eval_batch_size` under a field
whose metadata says `prefix: eval_`); a YAML section may write it flat or nested (`decoding: {batch_size: 8}`).
Each config checks its own values in `__post_init__` with the helpers below, so every rule is written once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
OptionPath = tuple[str, ...]  # field names from the outer config down to one option


class ConfigError(ValueError):
    """A config file or value is invalid."""


class OptionError(ConfigError):
    """One option's value is invalid; the message names the config section and the option."""

    def __init__(self, section: str, option: str, problem: str):
        super().__init__(f"{section}: {option} {problem}")
        self.section, self.option, self.problem = section, option, problem


# ------------------------------------------------------------------ checks a config's __post_init__ calls


def section_of(config: Any) -> str:
    """The name of a config (or config class) in messages and files: its SECTION (e.g. "distill")."""
    kind = config if isinstance(config, type) else type(config)
    return getattr(kind, "SECTION", kind.__name__)


def invalid(config: Any, name: str, problem: str) -> OptionError:
    return OptionError(section_of(config), name, problem)


def check_types(config: Any) -> None:
    """Each field holds a value of its declared type; integral floats, numeric strings, paths and lists are
    converted (16.0 -> 16, "1e-4" -> 0.0001, Path -> str, list -> tuple)."""
    nested = nested_fields(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        converted = _convert(value, str(f.type), nested.get(f.name))
        if converted is _WRONG:
            kind = _describe(str(f.type), nested.get(f.name))
            raise invalid(config, f.name, f"must be {kind}, not {_show(value)}")
        if converted is not value:
            object.__setattr__(config, f.name, converted)


def required(config: Any, *names: str) -> None:
    """Each named option is set (not empty)."""
    for name in names:
        if not getattr(config, name):
            flag = "--" + name.replace("_", "-")
            raise invalid(
                config,
                name,
                f"is required: pass {flag}, or set `{name}:` in the {section_of(config)} section",
            )


def positive(config: Any, *names: str) -> None:
    """Each named option, unless None, is above 0."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:
            kind = "a positive integer" if isinstance(value, int) else "positive"
            raise invalid(config, name, f"must be {kind}, not {_show(value)}")


def at_least(config: Any, minimum: float, *names: str) -> None:
    """Each named option, unless None, is MINIMUM or more."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value >= minimum:
            raise invalid(config, name, f"must be at least {minimum}, not {_show(value)}")


def in_range(config: Any, low: float, high: float, *names: str) -> None:
    """Each named option, unless None, lies in [LOW, HIGH]."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not low <= value <= high:
            raise invalid(config, name, f"must lie in [{low:g}, {high:g}], not {_show(value)}")


def one_of(config: Any, name: str, choices: Iterable[str | None]) -> None:
    """The named option is one of CHOICES."""
    choices = tuple(choices)
    value = getattr(config, name)
    if value not in choices:
        shown = ", ".join("none (null)" if c is None else str(c) for c in choices)
        raise invalid(config, name, f"must be one of {shown}, not {_show(value)}")


_WRONG = object()


def _convert(value: Any, annotation: str, nested_default: Any) -> Any:
    """VALUE as one of the kinds in ANNOTATION (e.g. "int | None"), or _WRONG; unknown kinds pass as they are."""
    kinds = [part.strip() for part in annotation.split("|")]
    if value is None:
        return None if "None" in kinds else _WRONG
    for kind in (k for k in kinds if k != "None"):
        converted = _as_kind(value, kind, nested_default)
        if converted is not _WRONG:
            return converted
    return _WRONG


def _as_kind(value: Any, kind: str, nested_default: Any) -> Any:
    base = kind.split("[", 1)[0]
    if base == "bool":
        return value if isinstance(value, bool) else _WRONG
    if base == "int":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if base == "float":
        return _as_float(value)
    if base == "str":
        return os.fspath(value) if isinstance(value, (str, os.PathLike)) else _WRONG
    if base == "tuple":
        return _as_tuple(value, kind.split("[", 1)[1].split(",")[0].strip() if "[" in kind else "")
    if nested_default is not None:
        return value if isinstance(value, type(nested_default)) else _WRONG
    return value  # a type these checks do not know: the config's own rules judge it


def _as_float(value: Any) -> Any:
    if isinstance(value, bool):
        return _WRONG
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return _WRONG
    return _WRONG


def _as_tuple(value: Any, item_kind: str) -> Any:
    items = (value,) if isinstance(value, (str, os.PathLike)) else value  # one manifest for a list of one
    if not isinstance(items, (list, tuple)):
        return _WRONG
    converted = tuple(_as_kind(item, item_kind, None) if item_kind else item for item in items)
    return _WRONG if any(item is _WRONG for item in converted) else converted


def _describe(annotation: str, nested_default: Any) -> str:
    words = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}
    kinds = [part.strip() for part in annotation.split("|")]
    described = []
    for kind in kinds:
        if kind == "None":
            continue
        if kind.startswith("tuple"):
            described.append("a list")
        elif kind in words:
            described.append(words[kind])
        else:
            described.append(f"a {type(nested_default).__name__ if nested_default else kind} (a mapping)")
    return " or ".join(described) + (" (or null)" if "None" in kinds else "")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------ reading and building


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
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """'; did you mean X?' for the closest known word, or ''."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]}?" if close else ""


@functools.cache
def nested_fields(cls: type) -> dict[str, Any]:
    """CLS's fields that hold a config dataclass, with their default instances."""
    nested = {}
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            nested[f.name] = default
    return nested


@functools.cache
def option_paths(cls: type) -> dict[str, OptionPath]:
    """Every option of CLS by its flat name (its flag's, an old flat YAML key's) -> its path of fields."""
    nested = nested_fields(cls)
    paths = {f.name: (f.name,) for f in dataclasses.fields(cls) if f.name not in nested}
    for f in dataclasses.fields(cls):
        if f.name in nested:
            prefix = _prefix(cls, f.name)
            for name, path in option_paths(type(nested[f.name])).items():
                if prefix + name in paths:
                    raise TypeError(f"{cls.__name__}: option {prefix + name} is defined twice")
                paths[prefix + name] = (f.name, *path)
    return paths


def build_config(
    cls: type[T], file_values: Mapping[str, Any], flag_values: Mapping[str, Any], source: str = ""
) -> T:
    """CLS from file values (flat or nested) overridden by flags that were given (None means not given)."""
    source = source or section_of(cls)
    values = option_values(cls, file_values, source)
    paths = option_paths(cls)
    renamed = getattr(cls, "RENAMED", {})
    for old, new in renamed.items():
        if flag_values.get(old) is not None:
            print(
                f"{source}: --{old.replace('_', '-')} is deprecated, use --{new.replace('_', '-')}",
                file=sys.stderr,
            )
            flag_values = {**flag_values, new: flag_values.get(new) or flag_values[old]}
    values |= {paths[k]: v for k, v in flag_values.items() if k in paths and v is not None}
    return instantiate(cls, values)


def option_values(cls: type, values: Mapping[str, Any], source: str) -> dict[OptionPath, Any]:
    """A config section's values by option path; unknown keys are refused with the closest known one."""
    paths, nested = option_paths(cls), nested_fields(cls)
    renamed = getattr(cls, "RENAMED", {})
    found: dict[OptionPath, Any] = {}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key in renamed and value is not None:
            print(f"{source}: {key} is deprecated, use {renamed[key]}", file=sys.stderr)
            key = renamed[key]
        if key in nested and isinstance(value, Mapping):
            inner = option_values(type(nested[key]), value, f"{source}.{key}")
            pairs = [((key, *path), leaf) for path, leaf in inner.items()]
        elif key in nested:  # not a mapping: the config's type check says what it should be
            pairs = [((key,), value)]
        elif key in paths:
            pairs = [(paths[key], value)]
        else:
            known = [*paths, *nested]
            raise ConfigError(f"{source}: unknown key {key!r}{did_you_mean(key, known)}")
        for path, leaf in pairs:
            if path in found:
                raise ConfigError(f"{source}: {'.'.join(path)} is set twice (flat and nested)")
            found[path] = leaf
    return found


def instantiate(cls: type[T], values: Mapping[OptionPath, Any], base: Any = None) -> T:
    """CLS (or BASE with changes) from values by option path; nested configs start from their defaults."""
    kwargs = {path[0]: value for path, value in values.items() if len(path) == 1}
    for name, default in nested_fields(cls).items():
        inner = {path[1:]: value for path, value in values.items() if len(path) > 1 and path[0] == name}
        if inner:
            start = kwargs.get(name, getattr(base, name, default))
            kwargs[name] = _instantiate_nested(cls, name, inner, start)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except TypeError as error:
        raise ConfigError(f"{section_of(cls)}: {error}") from error


def _instantiate_nested(cls: type, name: str, values: Mapping[OptionPath, Any], start: Any) -> Any:
    """A nested config; its errors are told by the option's flat name in the outer section."""
    try:
        return instantiate(type(start), values, base=start)
    except OptionError as error:
        option = _prefix(cls, name) + error.option
        raise OptionError(section_of(cls), option, error.problem) from error


def _prefix(cls: type, name: str) -> str:
    """The prefix of the flat names of the options inside CLS's nested field NAME ("eval_" ...)."""
    return next(f.metadata.get("prefix", "") for f in dataclasses.fields(cls) if f.name == name)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready flat dict of a config: one key per option, by its flat name (as a flag spells it)."""
    flat = {}
    for name, path in option_paths(type(config)).items():
        value = config
        for part in path:
            value = getattr(value, part)
        flat[name] = value
    return json.loads(json.dumps(flat, default=str))


def check_section(
    cls: type[T], values: Mapping[str, Any], source: str, placeholders: Mapping[str, Any] | None = None
) -> T:
    """Build CLS from a config section as a stage would, PLACEHOLDERS standing in for the options the
    scripts pass as flags (teacher, output_dir ...) where the section does not set them."""
    found = option_values(cls, values, source)
    paths = option_paths(cls)
    for name, value in (placeholders or {}).items():
        found.setdefault(paths[name], value)
    return instantiate(cls, found)
