"""Chat templates for rendering conversations, and the per-message segments the loss mask comes from.

A conversation is rendered one message at a time with the template itself: the text each
assistant reply adds is the trained segment, the text before it (system, user, the assistant
header) is not. Each segment is tokenised on its own and appended, so every token gets its
label the moment it is produced; nothing searches the final string for markers afterwards.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from instruct.config import ConfigError

# ChatML without a default system prompt: for base models whose tokenizer has <|im_start|>/<|im_end|>.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Alpaca-style plain text for base models without chat tokens; each reply ends with the EOS token.
ALPACA = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
    "{% else %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)
NAMED_TEMPLATES = {"chatml": CHATML, "alpaca": ALPACA}
TEMPLATE_CHOICES = ("auto", "tokenizer", *NAMED_TEMPLATES)


def select_template(tokenizer: Any, name: str) -> str:
    """Install the named template on `tokenizer` (so a saved tokenizer carries it) and return its name."""
    if name not in TEMPLATE_CHOICES:
        raise ConfigError(f"data.template: {name!r} is not one of {', '.join(TEMPLATE_CHOICES)}")
    if name == "auto":
        if tokenizer.chat_template:
            return "tokenizer"
        name = "chatml" if _has_tokens(tokenizer, "<|im_start|>", "<|im_end|>") else "alpaca"
    if name == "tokenizer":
        if not tokenizer.chat_template:
            raise ConfigError("data.template: this tokenizer has no chat template; use chatml or alpaca")
        return name
    if name == "chatml" and not _has_tokens(tokenizer, "<|im_start|>", "<|im_end|>"):
        raise ConfigError("data.template: chatml needs <|im_start|>/<|im_end|> tokens, which this tokenizer "
                          "lacks; use template=alpaca")
    if name == "alpaca" and tokenizer.eos_token is None:
        raise ConfigError("data.template: alpaca ends replies with the EOS token, but this tokenizer has none")
    tokenizer.chat_template = NAMED_TEMPLATES[name]
    return name


def _has_tokens(tokenizer: Any, *tokens: str) -> bool:
    vocab = tokenizer.get_vocab()
    return all(token in vocab for token in tokens)


def render_segments(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, is_assistant_reply) segments, in order.

    Raises ConfigError if the template is not prefix-stable (rendering a conversation's start
    must be a prefix of rendering all of it), because then no exact mask exists.
    """
    def render(upto: int, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(list(messages[:upto]), tokenize=False,
                                             add_generation_prompt=generation_prompt)

    segments: list[tuple[str, bool]] = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(index, True)
        full = render(index + 1, False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ConfigError(f"the chat template rewrites earlier turns (message {index}), so assistant tokens "
                              "cannot be masked exactly; use data.template=chatml or alpaca")
        segments += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    return [(text, trained) for text, trained in segments if text]
