"""`instruct recipes ls` and `instruct recipes cp NAME [DEST]`: start from a shipped recipe."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.group()
def recipes() -> None:
    """Shipped recipes (build, mix, synth, tune): list them, copy one out to edit."""


@recipes.command("ls")
def ls_command() -> None:
    """List the shipped recipes by name, with what each is for."""
    from instruct.resources import RECIPE_FOLDERS
    from instruct.resources.recipes import description, shipped_recipes

    found = shipped_recipes()
    for folder, what in RECIPE_FOLDERS.items():
        click.echo(f"{folder}/  ({what})")
        for name, path in found.items():
            if name.startswith(f"{folder}/"):
                click.echo(f"  {path.stem:24} {description(path)}")


@recipes.command("cp")
@click.argument("name")
@click.argument("destination", default=".", required=False)
@click.option("--force", is_flag=True, help="Overwrite DESTINATION if it exists.")
def cp_command(name: str, destination: str, force: bool) -> None:
    """Copy shipped recipe NAME (e.g. `web`, `lora`) to DESTINATION (a file or folder; default: here)."""
    from instruct.resources.recipes import copy_recipe

    with user_errors():
        click.echo(copy_recipe(name, destination, force))
