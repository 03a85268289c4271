"""`instruct templates list` and `instruct templates check [DATASET] [--templates T]`."""
from __future__ import annotations

import textwrap
from pathlib import Path

import click

from instruct.errors import user_errors


@click.group()
def templates() -> None:
    """Template library: list it, and check templates against data."""


@templates.command("list")
@click.argument("path_or_name", required=False)
def list_command(path_or_name: str | None) -> None:
    """List the library's template files (or the templates of PATH_OR_NAME)."""
    from instruct.templates.loader import library_names, load_templates, read_template_file, resolve

    with user_errors():
        if path_or_name:
            for template in load_templates(path_or_name):
                kind = "inverted" if template.metadata.inverted else ""
                click.echo(f"{template.name:32} {template.id:38} {kind}")
            return
        for name in library_names():
            path = resolve(name)[0]
            data = read_template_file(path)
            count = len(load_templates(path))
            click.echo(f"{name:24} {count:3} templates  {data.get('task', '')}")


@templates.command("check")
@click.argument("dataset", required=False)
@click.option("--templates", "templates_arg", help="Template file, folder or library name "
              "(default: the library file named like DATASET; without DATASET, every library file).")
@click.option("--split", default="", help="Split of DATASET to check, e.g. validation or train[:100].")
@click.option("--sample", default=50, show_default=True, help="Rows of DATASET to render.")
@click.option("--seed", default=0, show_default=True)
def check_command(dataset: str | None, templates_arg: str | None, split: str, sample: int, seed: int) -> None:
    """Validate templates against DATASET's fields (or the `examples` rows of each template file).

    Checks that every field exists, answer choices render and targets are non-empty on a
    sample, and prints a rendered example of each template. Exits 1 if any template fails.
    """
    with user_errors():
        failures = sum(_check_one(label, templates, rows, columns, seed)
                       for label, templates, rows, columns in _jobs(dataset, templates_arg, split, sample))
    if failures:
        raise SystemExit(1)


def _jobs(dataset: str | None, templates_arg: str | None, split: str, sample: int):
    from instruct.config import ConfigError
    from instruct.templates.loader import library_names, load_templates, read_template_file, resolve

    if dataset is None:
        files = resolve(templates_arg) if templates_arg else [resolve(n)[0] for n in library_names()]
        for path in files:
            rows = read_template_file(path).get("examples") or []
            if not rows:
                raise ConfigError(f"{path}: no `examples` rows to check against; give a DATASET")
            rows = [{"id": f"example-{i}", **row} for i, row in enumerate(rows)]
            columns = sorted({key for row in rows for key in row})
            yield f"{path} on its {len(rows)} example rows", load_templates(path), rows, columns
        return
    from instruct.io.readers.dataset import load_split

    loaded, split_name, offset = load_split(dataset, split)
    if not templates_arg:
        stem = Path(dataset).name.split(".")[0]
        if stem not in library_names():
            raise ConfigError(f"{dataset}: no library templates named {stem!r}; give --templates")
        templates_arg = stem
    head = loaded.select(range(min(sample, len(loaded))))
    rows = [{"id": f"{split_name}/{offset + i}", **row} for i, row in enumerate(head)]
    columns = ["id", *loaded.column_names]
    label = f"{templates_arg} on {len(rows)} rows of {dataset}[{split_name}]"
    yield label, load_templates(templates_arg), rows, columns


def _check_one(label: str, templates: list, rows: list, columns: list, seed: int) -> int:
    from instruct.templates.check import check_all

    click.echo(click.style(label, bold=True))
    failures = 0
    for result in check_all(templates, rows, columns, seed):
        name = result.template.name
        if not result.ok:
            failures += 1
            click.echo(f"  {click.style('FAIL', fg='red')}  {name}: {result.problem()}")
            continue
        tally = ", ".join(f"{k} {n}" for k, n in sorted(result.outcomes.items()))
        click.echo(f"  {click.style('ok', fg='green')}    {name} ({tally})")
        prompt, target = result.example
        click.echo(textwrap.indent(f"prompt: {prompt}\ntarget: {target}", "        "))
        if result.choices:
            click.echo(f"        choices: {' | '.join(result.choices)}")
    return failures
