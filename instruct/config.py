"""Plain YAML onto typed dataclasses: one loader for recipes and step parameters (CLI overrides: instruct.overrides).

Unknown keys and wrong types are errors that name the offending key, so a typo in a recipe
never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A recipe or parameter that does not fit its dataclass."""


def load_yaml(path: str | Path, loader: type = yaml.SafeLoader, what: str = "recipe") -> dict[str, Any]:
    """A YAML mapping from `path`; unreadable or invalid files are errors naming file and line."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.strerror})") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes().count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path}:{line}: {what} is not UTF-8 text (byte {error.object[error.start]:#04x})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(error, 'problem', error)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, converting nested dataclasses and checking types."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {', '.join(unknown)}; "
                          f"expected some of {', '.join(sorted(fields))}")
    values = {}
    for name, field in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            values[name] = _coerce(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where or cls.__name__}: missing required key {name!r}")
    return cls(**values)


def require_positive(instance: Any, where: str, *names: str) -> None:
    """Sizes and counts that must be at least 1 (0 would loop forever, a negative one crash later)."""
    for name in names:
        value = getattr(instance, name)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ConfigError(f"{where}.{name}: must be at least 1, got {value}")


def to_dict(instance: Any) -> dict[str, Any]:
    """A dataclass as plain data (for manifests and saved recipes)."""
    return dataclasses.asdict(instance)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        exact = [arg for arg in args if isinstance(arg, type) and not dataclasses.is_dataclass(arg)
                 and isinstance(value, arg) and not (arg is int and isinstance(value, bool))]
        if exact:  # `list[str] | str` keeps a plain string as a string
            return value
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(hint, value, key)
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if origin is list and args and args[0] is str and isinstance(value, str):
                return [value]  # a single path or name where a list is expected
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        return _to_float(value, key)
    if hint in (int, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def _to_float(value: Any, key: str) -> float:
    """Numbers, and strings such as "1e-3" (YAML 1.1 reads exponents without a dot as strings)."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
