"""The one path from the command line into a config: `key=value` overrides and CLI flags.

Every command maps its flags to dotted keys and hands them here with the user's overrides, so
a flag and its `key=value` spelling are the same thing (the flag wins); the dataclass the
mapping is loaded into does the validation. Keys walk into lists too: `steps.NAME.PARAM=value`
sets a parameter of the step called NAME, `steps.INDEX.PARAM=value` one of the step at INDEX
(needed where a step name repeats).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import yaml

from instruct.config import ConfigError, from_dict

T = TypeVar("T")


def apply(data: dict[str, Any], overrides: Iterable[str] = (), flags: Mapping[str, Any] | None = None
          ) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (values parsed as YAML), then the flags given (None = not given), in place."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"override {override!r}: the value is not valid YAML ({error})") from None
        set_key(data, key, value, override)
    for key, value in (flags or {}).items():
        if value is not None and value != [] and value != ():
            set_key(data, key, list(value) if isinstance(value, tuple) else value, f"--{key}")
    return data


def config_from(cls: type[T], overrides: Iterable[str], flags: Mapping[str, Any], where: str) -> T:
    """Dataclass `cls` from `key=value` overrides and flags alone (commands without a recipe file)."""
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"{where}: expected key=value overrides, got {bad[0]!r}")
    return from_dict(cls, apply({}, overrides, flags), where)


def split_args(args: Iterable[str]) -> tuple[str | None, list[str]]:
    """A leading RECIPE.yaml (optional) and the `key=value` overrides after it; anything else is an error."""
    args = list(args)
    recipe = args[0] if args and "=" not in args[0] else None
    overrides = args[1:] if recipe is not None else args
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"expected key=value overrides, got {bad[0]!r}")
    return recipe, overrides


def set_key(data: dict[str, Any], key: str, value: Any, given: str) -> None:
    """Set dotted `key` in a nested mapping, creating sections and entering lists by index or step name."""
    target: Any = data
    *parents, leaf = key.split(".")
    for position, part in enumerate(parents):
        if isinstance(target, list):
            target = _list_item(target, part, ".".join(parents[:position]), given)
            continue
        if not isinstance(target, dict):
            raise ConfigError(f"override {given!r}: {'.'.join(parents[:position])!r} is not a section")
        child = target.setdefault(part, {})
        if child is None:
            child = target[part] = {}
        target = child
    if isinstance(target, list):
        raise ConfigError(f"override {given!r}: {'.'.join(parents)!r} is a list; name an item "
                          f"({'.'.join(parents)}.NAME.KEY or .INDEX.KEY) or set the whole list")
    if not isinstance(target, dict):
        raise ConfigError(f"override {given!r}: {'.'.join(parents)!r} is not a section")
    target[leaf] = value


def _list_item(items: list[Any], part: str, where: str, given: str) -> dict[str, Any]:
    """The parameters of item `part` (an index, or the name of a `name` / `{name: params}` step) of a list."""
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(f"override {given!r}: {where} has {len(items)} items, no index {index}")
    else:
        matches = [i for i, item in enumerate(items) if _item_name(item) == part]
        if not matches:
            names = ", ".join(n for n in map(_item_name, items) if n) or "none"
            raise ConfigError(f"override {given!r}: {where} has no item {part!r} (it has {names})")
        if len(matches) > 1:
            raise ConfigError(f"override {given!r}: {where} has {part!r} at {', '.join(map(str, matches))}; "
                              f"name one by index, e.g. {where}.{matches[1]}.KEY=VALUE")
        index = matches[0]
    item = items[index]
    if isinstance(item, str):  # a bare step name gains a parameter mapping
        item = items[index] = {item: {}}
    if isinstance(item, dict) and len(item) == 1:
        name = next(iter(item))
        if item[name] is None:
            item[name] = {}
        if isinstance(item[name], dict):
            return item[name]
    if isinstance(item, dict):
        return item
    raise ConfigError(f"override {given!r}: {where}[{index}] is {item!r}, not a section")


def _item_name(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        return next(iter(item))
    return None
