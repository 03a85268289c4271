"""The `instruct` command: a thin click layer; each subcommand lives beside the code it drives.

Subcommands are imported only when used, so `instruct build` never pays for torch.
"""
from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of its click command
COMMANDS = {
    "build": "instruct.pipeline.cli:build",
    "chat": "instruct.serve.chat:chat",
    "classify": "instruct.quality.cli:classify",
    "export": "instruct.io.export:export_command",
    "export-model": "instruct.export_model.cli:export_model_command",
    "templates": "instruct.templates.cli:templates",
    "mix": "instruct.mixture:mix_command",
    "tune": "instruct.tune.cli:tune",
    "synth": "instruct.synth.cli:synth",
    "serve": "instruct.serve.cli:serve",
    "recipes": "instruct.resources.cli:recipes",
    "samples": "instruct.samples:samples",
    "eval": "instruct.evaluate.cli:eval_command",
    "demo": "instruct.demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[name].partition(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="instruct")
def main() -> None:
    """instruct: raw text -> instruction data -> a fine-tuned model."""


if __name__ == "__main__":
    main()
