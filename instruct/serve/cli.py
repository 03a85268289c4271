"""`instruct serve [--model PATH] [--adapter DIR] [--port P]`: an OpenAI-compatible endpoint on a local model."""
from __future__ import annotations

import click

from instruct.errors import user_errors


@click.command()
@click.option("--model", help="HF folder or .gguf file (default: the embedded SmolLM2-135M-Instruct).")
@click.option("--adapter", type=click.Path(file_okay=False, exists=True), help="A peft adapter folder to apply.")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--engine", type=click.Choice(["transformers", "fake"]), default="transformers", show_default=True,
              help="'fake': a deterministic scripted model, for benchmarks and tests.")
@click.option("--threads", type=int, help="CPU threads for the transformers engine (default: torch's).")
@click.option("--fake-latency", type=float, default=0.0, help="Seconds the fake engine takes per request.")
@click.option("--fake-replies", type=click.Path(dir_okay=False, exists=True),
              help="JSON list of {pattern, replies} rules: hand-built answers for the fake engine.")
@click.option("--request-log", type=click.Path(dir_okay=False), help="Append one JSON line per request here.")
@click.option("--fail-first-attempts", type=int, default=0, help="Refuse each distinct request this many times.")
@click.option("--fail-status", type=int, default=429, show_default=True, help="Status of refused attempts.")
@click.option("--retry-after", type=float, help="Retry-After seconds sent with refused attempts.")
@click.option("--hold-after", type=int, help="After this many answers, hold every later request unanswered.")
def serve(model: str | None, adapter: str | None, port: int, host: str, engine: str, threads: int | None,
          fake_latency: float, fake_replies: str | None, request_log: str | None, fail_first_attempts: int, fail_status: int,
          retry_after: float | None, hold_after: int | None) -> None:
    """Serve /v1/chat/completions, /v1/completions and /v1/models until interrupted."""
    from instruct.serve.engines import FakeEngine, TransformersEngine, load_reply_rules
    from instruct.serve.server import Faults, OpenAIServer

    with user_errors():
        replies = load_reply_rules(fake_replies) if fake_replies else None
        backend = FakeEngine(fake_latency, replies) if engine == "fake" else TransformersEngine(model, adapter, threads=threads)
        server = OpenAIServer(backend, host, port, request_log,
                              Faults(fail_first_attempts, fail_status, retry_after, hold_after))
    click.echo(f"serving {backend.model_name} on {server.base_url}", err=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
