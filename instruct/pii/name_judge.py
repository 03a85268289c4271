"""A second opinion on a found name: does the embedded language model read the words as a person's?

spaCy's small model labels coined brands ("Dyson Airwrap") and foreign towns ("Grodzisk
Mazowiecki") PERSON, and the rules around it cannot know every brand and town. A causal LM has
read enough text to tell them apart in context: after the name's line it completes `"X" is the
name of a` with " person" far more often for a person than for a product or a place, and far more
reliably after a few solved examples (EXAMPLES). The score is log p(person) - log sum p(other
kinds); a span scoring below the threshold is no name. Only the name's line (a window of it) is
read, one forward pass per span, batched per document; the examples' keys and values are computed
once per process and shared by every batch, so they cost attention over 283 cached positions (6.5 MB), not
a forward pass over them.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

PROMPT = '{line}\nIn the sentence above, "{span}" is the name of a'
PERSON = " person"
OTHER_KINDS = (" place", " city", " town", " country", " product", " company", " brand", " software", " tool",
               " service", " thing")
# solved examples before the span's line, written for this prompt (no bench set draws from them): people
# after a cue and without one, towns with particles, a product, a company, a project
EXAMPLES = (("Thanks to Marta Lindqvist for the review.", "Marta Lindqvist", "person"),
            ("The ferry from Puerto de la Cruz was late again.", "Puerto de la Cruz", "town"),
            ("We moved the wiki to Zoho Notebook last spring.", "Zoho Notebook", "product"),
            ("Yusuf Demirci, 61, chairs the board.", "Yusuf Demirci", "person"),
            ("Shares of Hanwha Ocean fell sharply.", "Hanwha Ocean", "company"),
            ("Weather for San Vicente del Raspeig: sunny.", "San Vicente del Raspeig", "town"),
            ("Author: Chukwuemeka Obi <c@example.org>", "Chukwuemeka Obi", "person"),
            ("The Apache Pulsar maintainers cut a release.", "Apache Pulsar", "software"))
THRESHOLD = 0.0  # on pii_bench.py --real's dev sets (see bench/README.md, round 6)
CONTEXT_CHARS = 160  # of the line either side of the span: the LM reads a window, not a whole CSV row
BATCH = 32


@lru_cache(maxsize=1)
def load_judge() -> tuple[Any, Any, Any, Any]:
    """(tokenizer, decoder, option-row weights, the EXAMPLES' per-layer keys and values) of the embedded
    model, on a GPU where there is one, in bf16 where the device has it; once per process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instruct.config import ConfigError
    from instruct.models import ModelNotFoundError, resolve_model
    from instruct.tune.precision import cpu_bf16_units

    try:
        path = resolve_model(None)
    except ModelNotFoundError as error:
        raise ConfigError(f"pii name_judge: lm reads names with the embedded model: {error}") from None
    gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if (torch.cuda.is_bf16_supported() if gpu else cpu_bf16_units()) else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval().to("cuda" if gpu else "cpu")
    options = [tokenizer(word, add_special_tokens=False).input_ids[0] for word in (PERSON, *OTHER_KINDS)]
    rows = model.get_output_embeddings().weight[options].detach().float()
    with torch.inference_mode():
        cache = model.model(input_ids=torch.tensor([tokenizer(examples_prompt()).input_ids], device=rows.device),
                            use_cache=True).cache
    prefix = [(layer.keys, layer.values) for layer in cache.layers]
    return tokenizer, model.model, rows, prefix


def examples_prompt() -> str:
    """The EXAMPLES as solved prompts, the text whose keys and values every batch reuses."""
    return "".join(PROMPT.format(line=line, span=span) + f" {kind}.\n\n" for line, span, kind in EXAMPLES)


def window(line: str, start: int, end: int) -> str:
    """The part of `line` the LM reads: CONTEXT_CHARS either side of [start, end), cut at spaces."""
    left = line.rfind(" ", 0, max(0, start - CONTEXT_CHARS)) + 1 if start > CONTEXT_CHARS else 0
    cut = line.find(" ", end + CONTEXT_CHARS)
    return line[left:cut if cut >= 0 else len(line)]


def person_scores(items: Sequence[tuple[str, str]]) -> list[float]:
    """log p(person) - log sum p(other kinds) for each (line, span): > 0 reads as a person."""
    import torch

    if not items:
        return []
    from transformers.cache_utils import DynamicCache

    tokenizer, decoder, rows, prefix = load_judge()
    encoded = [tokenizer(PROMPT.format(line=line, span=span)).input_ids for line, span in items]
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))  # batches of like lengths pad little
    scores = [0.0] * len(encoded)
    for first in range(0, len(order), BATCH):
        batch = [encoded[index] for index in order[first:first + BATCH]]
        longest = max(map(len, batch))
        # padded on the right, no mask needed: a causal model's last real token never sees the padding
        ids = torch.tensor([row + [0] * (longest - len(row)) for row in batch], device=rows.device)
        # the examples' cache, expanded (not copied) to the batch; each layer appends to a new tensor
        cache = DynamicCache([(keys.expand(len(batch), -1, -1, -1), values.expand(len(batch), -1, -1, -1))
                              for keys, values in prefix])
        with torch.inference_mode():
            hidden = decoder(input_ids=ids, cache=cache, use_cache=True).last_hidden_state
            last = hidden[torch.arange(len(batch)), torch.tensor([len(row) - 1 for row in batch])]
            logps = (last.float() @ rows.T).log_softmax(-1)  # over the kinds only: the differences are the same
        for index, score in zip(order[first:first + BATCH], (logps[:, 0] - logps[:, 1:].logsumexp(-1)).tolist()):
            scores[index] = score
    return scores
