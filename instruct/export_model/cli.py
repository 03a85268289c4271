"""`instruct export-model ADAPTER_OR_MODEL --format gguf|hf --output PATH [--quant f32|f16|bf16|q8_0]`."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.command("export-model")
@click.argument("source", metavar="ADAPTER_OR_MODEL", required=False)
@click.option("--format", "fmt", type=click.Choice(["gguf", "hf"]), required=True,
              help="gguf: one file for llama.cpp / Ollama; hf: a safetensors folder for vLLM / transformers.")
@click.option("--output", required=True, help="The .gguf file or HF folder to write.")
@click.option("--quant", type=click.Choice(["f32", "f16", "bf16", "q8_0"]), default="f16", show_default=True,
              help="Weight type (q8_0: GGUF only).")
@click.option("--model", "base", help="The adapter's base model, if not the one it records.")
@click.option("--check", is_flag=True, help="Reload the GGUF with transformers and report the logit difference.")
def export_model_command(source: str | None, fmt: str, output: str, quant: str, base: str | None, check: bool) -> None:
    """Merge an adapter (or take a model; default: the embedded one) and write it as GGUF or an HF folder."""
    from instruct.export_model import ExportError, export_model

    with user_errors():
        try:
            summary = export_model(source, fmt, output, quant, base=base, check=check)
        except ExportError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"wrote {summary['output']} ({summary['bytes'] / 2**20:.1f} MiB, {quant}) in {summary['seconds']:.1f} s")
    if "round_trip" in summary:
        trip = summary["round_trip"]
        click.echo(f"round trip: max |logit diff| {trip['max_abs_logit_diff']:.2e} (logits up to "
                   f"{trip['max_abs_logit']:.1f}), argmax agreement {100 * trip['argmax_agreement']:.1f} %, "
                   f"tokenizer mismatches {len(trip['tokenizer_mismatches'])}")
