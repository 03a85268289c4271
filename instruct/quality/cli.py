"""`instruct classify train|annotate`: build a quality classifier from labels or LLM scores."""
from __future__ import annotations

import click

from instruct.errors import fail_if_nothing_written, user_errors


@click.group()
def classify() -> None:
    """Model-based quality filtering: train a classifier, annotate documents with an LLM."""


@classify.command()
@click.option("--positive", "positive_path", help="Good documents (shards, .arrow, .parquet, .jsonl, .txt glob).")
@click.option("--negative", "negative_path", help="Bad documents, same formats.")
@click.option("--input", "input_path", help="One labeled input instead of --positive/--negative.")
@click.option("--label-field", default="label", show_default=True, help="Label field of --input (or of its meta).")
@click.option("--label-threshold", type=float, default=None,
              help="Numeric labels: good when >= this (default 0.5; use 3 for 0-5 annotation scores).")
@click.option("--positive-label", "positive_labels", multiple=True, help="String labels meaning good; repeat.")
@click.option("--text-field", default="text", show_default=True)
@click.option("--output", "-o", required=True, help="Model file to write (e.g. quality.npz); metrics and "
              "PR curve are written beside it.")
@click.option("--kind", type=click.Choice(["hashed", "embedding"]), default="hashed", show_default=True,
              help="hashed word n-grams (fast) or MiniLM sentence embeddings + linear head.")
@click.option("--holdout", type=float, default=0.2, show_default=True, help="Share held out for the metrics.")
@click.option("--char-ngrams", help="Add hashed char n-grams, e.g. 3,5 (slower, robust to spelling).")
@click.option("--c", "c", type=float, default=4.0, show_default=True, help="Inverse regularisation strength.")
@click.option("--threshold", type=float, default=0.5, show_default=True, help="Decision threshold stored in the model.")
@click.option("--seed", type=int, default=0, show_default=True)
def train(positive_path: str | None, negative_path: str | None, input_path: str | None, label_field: str,
          label_threshold: float | None, positive_labels: tuple[str, ...], text_field: str, output: str, kind: str,
          holdout: float, char_ngrams: str | None, c: float, threshold: float, seed: int) -> None:
    """Train a text-quality classifier and write it with its held-out metrics."""
    from instruct.config import ConfigError
    from instruct.io.shards import write_json
    from instruct.quality.classifier import TrainConfig, train_classifier
    from instruct.quality.data import load_labeled, load_texts
    from instruct.quality.features import HashedConfig
    from instruct.quality.metrics import write_pr_curve

    with user_errors():
        if input_path and not (positive_path or negative_path):
            texts, labels = load_labeled(input_path, text_field, label_field,
                                         label_threshold if label_threshold is not None else 0.5,
                                         positive_labels)
        elif positive_path and negative_path and not input_path:
            good, bad = load_texts(positive_path, text_field), load_texts(negative_path, text_field)
            texts, labels = good + bad, [1] * len(good) + [0] * len(bad)
        else:
            raise ConfigError("give either --positive and --negative, or --input with --label-field")
        hashed = HashedConfig(char_ngrams=[int(n) for n in char_ngrams.split(",")] if char_ngrams else [])
        config = TrainConfig(kind=kind, hashed=hashed, holdout=holdout, c=c, threshold=threshold, seed=seed)
        click.echo(f"training a {kind} classifier on {len(texts):,} records ({sum(labels):,} good)", err=True)
        result = train_classifier(texts, labels, config)
        path = result.classifier.save(output)
        stem = path.with_suffix("") if path.suffix else path
        write_json(result.classifier.header(), f"{stem}.metrics.json")
        if len(result.heldout_labels):
            write_pr_curve(result.heldout_labels, result.heldout_scores, f"{stem}.pr.png",
                           f"{kind} classifier, held-out n={len(result.heldout_labels)}")
    m = result.metrics
    if m:
        auc = f"{m['auc']:.3f}" if m["auc"] is not None else "n/a"
        click.echo(f"held-out: precision {m['precision']:.3f} · recall {m['recall']:.3f} · AUC {auc} "
                   f"· accuracy {m['accuracy']:.3f} (n={m['n']}) -> {path}")
    else:
        click.echo(f"trained without a held-out split -> {path}")


@classify.command()
@click.option("--input", "input_path", required=True, help="Documents: shards, .arrow, .parquet, .jsonl or .txt glob.")
@click.option("--output", "-o", required=True, help="Folder: annotations.jsonl, unscored.jsonl, manifest.json, cache/.")
@click.option("--num", type=int, default=1000, show_default=True, help="Documents to sample and grade.")
@click.option("--template", help="Prompt file (default: the shipped quality_annotation.yaml).")
@click.option("--prompt", "prompt_name", default="fineweb_edu", show_default=True,
              help="Prompt in the file: fineweb_edu (justify, then score) or score_first (small models).")
@click.option("--text-field", default="text", show_default=True)
@click.option("--max-chars", type=int, default=4000, show_default=True, help="Cut documents to this length.")
@click.option("--base-url", help="OpenAI-compatible endpoint (else OPENAI_BASE_URL, else the embedded model is served).")
@click.option("--model", help="Model name at the endpoint (default: the first one it lists).")
@click.option("--concurrency", type=int, default=16, show_default=True, help="Requests in flight at once.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the document sample.")
def annotate(input_path: str, output: str, num: int, template: str | None, prompt_name: str, text_field: str,
             max_chars: int, base_url: str | None, model: str | None, concurrency: int, seed: int) -> None:
    """Grade documents 0-5 with an LLM (FineWeb-Edu style); re-run to resume from the request cache.

    Train on the grades with `instruct classify train --input DIR/annotations.jsonl --label-field score
    --label-threshold 3`. The API key is read from OPENAI_API_KEY and never written anywhere.
    """
    from instruct.quality.annotate import DEFAULT_TEMPLATE, AnnotateConfig, run_annotate
    from instruct.synth.client import ClientConfig

    with user_errors():
        config = AnnotateConfig(input=input_path, output=output, num=num, text_field=text_field,
                                template=template or str(DEFAULT_TEMPLATE), prompt=prompt_name, max_chars=max_chars,
                                seed=seed, client=ClientConfig(base_url=base_url, model=model, concurrency=concurrency))
        manifest = run_annotate(config)
    counts, usage = manifest["counts"], manifest["usage"]
    fail_if_nothing_written(counts["scored"], usage, output)
    click.echo(f"graded {counts['scored']:,} of {counts['sampled']:,} documents (unscored {counts['unscored']:,}: "
               f"{counts['unscored_reasons']}) · scores {counts['scores']} · requests sent {usage['requests_sent']:,} "
               f"(cached {usage['cache_hits']:,}) in {manifest['seconds']:.1f}s -> {output}")
