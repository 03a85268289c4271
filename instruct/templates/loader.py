"""Read template files: promptsource's `templates.yaml` as it is, or our native YAML format.

promptsource files are `{dataset, subset?, templates: {ID: !Template {...}}}` with the custom
tags `!Template` and `!TemplateMetadata`; we read them with a *safe* loader that maps those
tags to plain mappings (promptsource itself uses yaml.FullLoader, which can build objects).

The native format is a list of templates with separate `prompt` and `target`, an optional
`system` prompt, an optional `inverse` (answer -> question), an optional `answer_pattern` (CoT
templates: a regex whose group 1 is the final answer, see `answers.py`) and a few `examples` rows
that `instruct templates check` renders:

    dataset: sentiment
    label_field: label
    templates:
      - name: review_feeling
        prompt: "Review: {{ text }}\\nIs this review positive or negative?"
        target: "{{ answer_choices[label] }}"
        answer_choices: negative ||| positive
        inverse: {prompt: "Write a {{ answer_choices[label] }} review.", target: "{{ text }}"}
    examples:
      - {text: "...", label: 1}
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from instruct import resources
from instruct.config import ConfigError, load_yaml
from instruct.schema import content_id
from instruct.templates.answers import compile_pattern
from instruct.templates.render import Template, TemplateError, TemplateMetadata

TEMPLATE_SUFFIXES = (".yaml", ".yml")
_METADATA_FIELDS = {f.name for f in fields(TemplateMetadata)} - {"extra", "inverted"}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that also accepts promptsource's tags, as plain mappings."""


def _mapping(loader: yaml.Loader, node: yaml.Node) -> dict[str, Any]:
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor("!Template", _mapping)
_Loader.add_constructor("!TemplateMetadata", _mapping)


def library_dirs() -> list[Path]:
    """Where template names are looked up: $INSTRUCT_TEMPLATES (os.pathsep-separated), then the shipped library."""
    extra = [Path(p) for p in os.environ.get("INSTRUCT_TEMPLATES", "").split(os.pathsep) if p]
    return extra + [resources.templates_dir()]


def resolve(path_or_name: str) -> list[Path]:
    """A file, a folder of template files (searched recursively), or a name in the library."""
    path = Path(os.path.expanduser(path_or_name))
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in TEMPLATE_SUFFIXES and p.is_file())
        if not found:
            raise ConfigError(f"{path}: no template files (*.yaml) in this folder")
        return found
    for folder in library_dirs():
        for candidate in (folder / f"{path_or_name}.yaml", folder / path_or_name / "templates.yaml"):
            if candidate.is_file():
                return [candidate]
    names = ", ".join(library_names()) or "none"
    raise ConfigError(f"templates {path_or_name!r}: no such file, folder or library name (library: {names})")


def library_names() -> list[str]:
    names = set()
    for folder in library_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)


def read_template_file(path: str | Path) -> dict[str, Any]:
    """The raw YAML of a template file (either format) as plain data."""
    path = Path(path)
    data = load_yaml(path, _Loader, "template file")
    if "templates" not in data:
        raise ConfigError(f"{path}: a template file is a mapping with a 'templates' key")
    return data


def load_templates(path: str | Path) -> list[Template]:
    """Every template of a promptsource `templates.yaml` or a native file (or a folder / library name)."""
    templates: list[Template] = []
    for file in resolve(str(path)):
        data = read_template_file(file)
        if isinstance(data["templates"], dict):
            templates.extend(_promptsource(data, file))
        elif isinstance(data["templates"], list):
            templates.extend(_native(data, file))
        else:
            raise ConfigError(f"{file}: 'templates' must be a mapping (promptsource) or a list (native)")
    return templates


def dataset_name(data: dict[str, Any], path: Path) -> str:
    name = str(data.get("dataset") or (path.parent.name if path.name == "templates.yaml" else path.stem))
    return f"{name}/{data['subset']}" if data.get("subset") else name


def _metadata(raw: Any, where: str, inverted: bool = False) -> TemplateMetadata:
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{where}: metadata must be a mapping")
    raw = dict(raw or {})
    known = {k: raw.pop(k) for k in list(raw) if k in _METADATA_FIELDS}
    return TemplateMetadata(**known, inverted=inverted, extra=raw)


def _promptsource(data: dict[str, Any], path: Path) -> list[Template]:
    dataset = dataset_name(data, path)
    templates = []
    for key, raw in data["templates"].items():
        where = f"{path}: template {key}"
        if not isinstance(raw, dict) or "jinja" not in raw:
            raise ConfigError(f"{where}: expected a !Template mapping with a 'jinja' key")
        templates.append(Template(id=raw.get("id", key), name=raw.get("name", key), jinja=_text(raw["jinja"], where),
                                  answer_choices=_choices(raw.get("answer_choices"), where),
                                  metadata=_metadata(raw.get("metadata"), where), dataset=dataset,
                                  reference=raw.get("reference") or "", path=str(path)))
    return templates


_NATIVE_KEYS = {"id", "name", "jinja", "prompt", "target", "answer_choices", "system", "metadata", "inverse",
                "reference", "label_field", "answer_pattern"}


def _native(data: dict[str, Any], path: Path) -> list[Template]:
    dataset = dataset_name(data, path)
    templates = []
    for position, raw in enumerate(data["templates"]):
        where = f"{path}: templates[{position}]"
        if not isinstance(raw, dict) or "name" not in raw:
            raise ConfigError(f"{where}: expected a mapping with a 'name'")
        unknown = sorted(set(raw) - _NATIVE_KEYS)
        if unknown:
            raise ConfigError(f"{where} ({raw['name']}): unknown key(s) {', '.join(unknown)}; "
                              f"expected some of {', '.join(sorted(_NATIVE_KEYS))}")
        label = raw.get("label_field", data.get("label_field", "label"))
        common = dict(answer_choices=_choices(raw.get("answer_choices"), where), dataset=dataset,
                      reference=raw.get("reference", ""), system=raw.get("system", data.get("system")), path=str(path),
                      label_fields=[label] if isinstance(label, str) else list(label))
        template_id = str(raw.get("id") or content_id(dataset, raw["name"])[:16])
        pattern = raw.get("answer_pattern", data.get("answer_pattern"))
        if pattern is not None:
            compile_pattern(_text(pattern, f"{where}.answer_pattern"), f"{where}.answer_pattern")
        templates.append(Template(id=template_id, name=raw["name"], jinja=_jinja(raw, where), answer_pattern=pattern,
                                  metadata=_metadata(raw.get("metadata"), where), **common))
        if raw.get("inverse"):
            templates.append(Template(id=f"{template_id}-inverted", name=f"{raw['name']}_inverted",
                                      jinja=_jinja(raw["inverse"], f"{where}.inverse"),
                                      metadata=_metadata(raw.get("metadata"), where, inverted=True), **common))
    return templates


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected Jinja text, got {type(value).__name__}")
    return value


def _choices(value: Any, where: str) -> str | None:
    """A `|||`-separated Jinja expression; early promptsource files hold a plain list instead."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ||| ".join(value)
    raise ConfigError(f"{where}: answer_choices must be Jinja text or a list of strings")


def _jinja(raw: dict[str, Any], where: str) -> str:
    """Native templates give `prompt` and `target` separately; they render as one program joined by |||."""
    if "jinja" in raw:
        if "prompt" in raw or "target" in raw:
            raise ConfigError(f"{where}: give either 'jinja' or 'prompt' + 'target', not both")
        return _text(raw["jinja"], where)
    if "prompt" not in raw or "target" not in raw:
        raise ConfigError(f"{where}: a native template needs 'prompt' and 'target' (or a promptsource 'jinja')")
    return f"{_text(raw['prompt'], where)}\n|||\n{_text(raw['target'], where)}"


__all__ = ["Template", "TemplateError", "load_templates", "resolve", "library_names", "read_template_file"]
