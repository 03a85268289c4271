"""`instruct serve [--model PATH] [--adapter [NAME=]DIR ...] [--port P] [key=value ...]`: an OpenAI-compatible
endpoint on a local model."""
from __future__ import annotations

from dataclasses import dataclass, field

import click

from instruct.config import ConfigError
from instruct.errors import user_errors
from instruct.serve.server import Limits


@dataclass
class ServeConfig:
    """What `instruct serve` flags and `key=value` overrides set (e.g. `port=0 limits.max_body_bytes=1048576`)."""

    model: str | None = None  # HF folder or .gguf; None: the embedded SmolLM2
    adapters: list[str] = field(default_factory=list)  # [NAME=]DIR
    port: int = 8000
    host: str = "127.0.0.1"
    threads: int | None = None
    request_log: str | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve.port: {self.port} is not a TCP port (0..65535; 0: any free port)")
        if self.limits.max_tokens < 1 or self.limits.request_timeout <= 0:
            raise ConfigError("serve.limits: max_tokens must be at least 1 and request_timeout above 0")


def parse_adapters(values: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    """`--adapter DIR` (at most one: the default model, as before) and `--adapter NAME=DIR` (picked by `model`)."""
    from pathlib import Path

    unnamed = [v for v in values if "=" not in v]
    if len(unnamed) > 1:
        raise click.BadParameter("only one adapter may be unnamed; name the others as NAME=DIR", param_hint="--adapter")
    named: dict[str, str] = {}
    for value in values:
        name, _, folder = value.rpartition("=")
        if name in named:
            raise click.BadParameter(f"the name {name!r} is given twice", param_hint="--adapter")
        if not Path(folder).is_dir():
            raise click.BadParameter(f"{folder}: no such adapter folder", param_hint="--adapter")
        if name:
            named[name] = folder
    return (unnamed[0] if unnamed else None), named


@click.command()
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--model", help="HF folder or .gguf file (default: the embedded SmolLM2-135M-Instruct).")
@click.option("--adapter", "adapters", multiple=True, metavar="[NAME=]DIR",
              help="A peft adapter folder. Repeat as NAME=DIR to serve several on one base: a request's `model` "
                   "picks one, the base model's name picks none.")
@click.option("--port", type=int, help="TCP port (default 8000; 0: any free port).")
@click.option("--host", help="Interface to bind (default 127.0.0.1; off loopback: --api-key).")
@click.option("--api-key", envvar="INSTRUCT_SERVE_API_KEY", help="Require `Authorization: Bearer KEY` "
              "(env INSTRUCT_SERVE_API_KEY).")
@click.option("--max-tokens", "max_tokens_limit", type=click.IntRange(1),
              help="The most tokens one request may ask for (default 4096; = limits.max_tokens).")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds a request may wait for the model before a 503 (default 600; = limits.request_timeout).")
@click.option("--threads", type=int, help="CPU threads for the transformers engine (default: torch's).")
@click.option("--request-log", type=click.Path(dir_okay=False), help="Append one JSON line per request here.")
# test harness (hidden from --help): a scripted model and injected faults, for benchmarks and crash/retry tests
@click.option("--engine", type=click.Choice(["transformers", "fake"]), default="transformers", hidden=True)
@click.option("--fake-latency", type=float, default=0.0, hidden=True)
@click.option("--fake-replies", type=click.Path(dir_okay=False, exists=True), hidden=True)
@click.option("--fail-first-attempts", type=int, default=0, hidden=True)
@click.option("--fail-status", type=int, default=429, hidden=True)
@click.option("--retry-after", type=float, hidden=True)
@click.option("--hold-after", type=int, hidden=True)
def serve(overrides: tuple[str, ...], model: str | None, adapters: tuple[str, ...], port: int | None,
          host: str | None, api_key: str | None, max_tokens_limit: int | None, request_timeout: float | None,
          threads: int | None, request_log: str | None, engine: str, fake_latency: float, fake_replies: str | None,
          fail_first_attempts: int, fail_status: int, retry_after: float | None, hold_after: int | None) -> None:
    """Serve /v1/chat/completions, /v1/completions (stream=true: server-sent events) and /v1/models.

    OVERRIDES are `key=value` settings (ServeConfig keys, e.g. `port=0 limits.max_body_bytes=1048576`)."""
    from instruct.overrides import config_from
    from instruct.serve.engines import FakeEngine, TransformersEngine, load_reply_rules
    from instruct.serve.server import Faults, OpenAIServer, is_loopback

    with user_errors():
        config = config_from(ServeConfig, overrides, {
            "model": model, "adapters": adapters, "port": port, "host": host, "threads": threads,
            "request_log": request_log, "limits.max_tokens": max_tokens_limit,
            "limits.request_timeout": request_timeout, "limits.api_key": api_key}, "serve")
    if not is_loopback(config.host) and not config.limits.api_key:
        raise click.UsageError(f"--host {config.host} is reachable from other machines: set --api-key to serve there")
    adapter, named = parse_adapters(tuple(config.adapters))
    with user_errors():
        replies = load_reply_rules(fake_replies) if fake_replies else None
        backend = (FakeEngine(fake_latency, replies) if engine == "fake"
                   else TransformersEngine(config.model, adapter, threads=config.threads, adapters=named))
        server = OpenAIServer(backend, config.host, config.port, config.request_log,
                              Faults(fail_first_attempts, fail_status, retry_after, hold_after), config.limits)
    click.echo(f"serving {', '.join(backend.model_names)} on {server.base_url}", err=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
