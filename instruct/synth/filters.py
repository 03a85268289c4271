"""Post-processing and filter rules of Self-Instruct and the elimination rules of Evol-Instruct.

Every rule returns a reason string (or None to keep), so the manifest can count drops by reason.
Thresholds follow the original code: an instruction needs more than 3 and at most 150 words
(`len(split()) <= 3 or > 150` is dropped in bootstrap_instructions.py); a response cut by max_tokens
is dropped whole; refusals are answers containing "sorry" with fewer than 80 words (WizardLM).
"""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field

BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to")

STOP_WORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now
of off on once only or other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves""".split())

SCAFFOLDING = ("#the given prompt#", "#rewritten prompt#", "#given prompt#", "#created prompt#", "given prompt",
               "rewritten prompt", "created prompt")


@dataclass
class InstructionRules:
    """Self-Instruct instruction filters (defaults: the paper's code)."""

    min_words: int = 4  # fewer words is dropped ("<= 3 words" in the original)
    max_words: int = 150
    blacklist: list[str] = field(default_factory=lambda: list(BLACKLIST))
    banned_prefixes: list[str] = field(default_factory=lambda: ["Write a program"])
    rouge_threshold: float = 0.7  # drop when ROUGE-L F with any kept instruction is greater than this


def split_instructions(text: str) -> list[str]:
    """Split a numbered-list continuation into instructions (the first item continues the prompt's number)."""
    return re.split(r"\n\d+\s?\. ", text)


def normalize_instruction(raw: str) -> str:
    """Whitespace collapsed, stripped, first letter capitalised and the rest lowered (str.capitalize, as upstream)."""
    return re.sub(r"\s+", " ", raw).strip().capitalize()


def instruction_reason(instruction: str, rules: InstructionRules) -> str | None:
    """Why a normalised instruction is dropped, before the novelty check; None keeps it."""
    if not instruction:
        return "empty"
    words = len(instruction.split())
    if words < rules.min_words:
        return "too_short"
    if words > rules.max_words:
        return "too_long"
    for word in rules.blacklist:
        if re.search(rf"\b({re.escape(word)})\b", instruction, flags=re.IGNORECASE):
            return "blacklisted_word"
    if any(instruction.startswith(prefix) for prefix in rules.banned_prefixes):
        return "write_a_program"
    if instruction[0] in string.punctuation:
        return "starts_with_punctuation"
    if not instruction[0].isascii():
        return "starts_with_non_ascii"
    return None


# --- instances --------------------------------------------------------------------------------------

Instance = tuple[str, str]  # (input, output)


def parse_input_output(text: str) -> Instance:
    """One 'Input: ... Output: ...' block -> (input, output), as prepare_for_finetuning.py does."""
    if re.findall(r"Output\s*\d*\s*:", text):
        parts = re.split(r"Output\s*\d*\s*:", text)
        inst_input, inst_output = parts[0].strip(), parts[1].strip()
    else:
        inst_input, inst_output = "", text.strip()
    if re.findall(r"Input\s*\d*\s*:", inst_output):  # a second pair ran on: keep the first output only
        inst_output = re.split(r"Input\s*\d*\s*:", inst_output)[0].strip()
    inst_input = re.sub(r"^Input\s*\d*\s*:", "", inst_input).strip()
    return inst_input, inst_output


def parse_generation_instances(text: str) -> list[Instance]:
    """Input-first responses: 'Example N' blocks, or a single block with an 'Output:'."""
    text = text.strip()
    if re.findall(r"Example\s?\d*\.?", text):
        blocks = [b.strip() for b in re.split(r"Example\s?\d*\.?", text) if b.strip()]
        return [parse_input_output(block) for block in blocks]
    if re.findall(r"Output\s*\d*\s*:", text):
        return [parse_input_output(text)]
    return []


def parse_classification_instances(text: str) -> list[Instance]:
    """Output-first responses: 'Class label: L' then the input on the following lines."""
    if "Class label:" not in text:
        return []
    instances = []
    for block in text.split("Class label:")[1:]:
        label, _, rest = block.strip().partition("\n")
        instances.append((rest.strip(), label.strip()))
    return instances


def instance_reason(instance: Instance) -> str | None:
    """filter_invalid_instances: input == output, empty output, input or output ending with a colon."""
    inst_input, inst_output = instance
    if inst_input == inst_output:
        return "input_equals_output"
    if inst_output == "":
        return "empty_output"
    if inst_input.strip().endswith(":") or inst_output.strip().endswith(":"):
        return "trailing_colon"
    return None


@dataclass
class InstanceDecision:
    kept: list[Instance]
    dropped: dict[str, int]  # reason -> instances


def filter_instances(instances: list[Instance], finish_reason: str | None, max_instances: int,
                     rng: random.Random) -> InstanceDecision:
    """The instance pipeline of prepare_for_finetuning.py, counting every drop by reason."""
    dropped: dict[str, int] = {}

    def drop(reason: str, count: int = 1) -> None:
        if count:
            dropped[reason] = dropped.get(reason, 0) + count

    if not instances:
        return InstanceDecision([], {"no_instances_parsed": 1})
    if finish_reason == "length":  # the last instance was cut by max_tokens
        instances = instances[:-1]
        drop("truncated_instance")
    valid = []
    for instance in instances:
        reason = instance_reason(instance)
        if reason:
            drop(reason)
        else:
            valid.append(instance)
    outputs: dict[str, str] = {}
    for inst_input, inst_output in valid:
        if inst_input and outputs.setdefault(inst_input, inst_output) != inst_output:
            drop("conflicting_outputs", len(valid))  # one input, two outputs: the whole task is unreliable
            return InstanceDecision([], dropped)
    unique = list(dict.fromkeys(valid))
    drop("duplicate_instance", len(valid) - len(unique))
    if len(unique) > max_instances:
        drop("over_max_instances", len(unique) - max_instances)
        unique = rng.sample(unique, max_instances)
    return InstanceDecision(unique, dropped)


# --- Evol-Instruct elimination --------------------------------------------------------------------

@dataclass
class EliminationRules:
    refusal_word: str = "sorry"
    refusal_max_words: int = 80  # "contains 'sorry' and is relatively short (less than 80 words)"
    scaffolding: list[str] = field(default_factory=lambda: list(SCAFFOLDING))
    drop_truncated_answers: bool = True  # ours: an answer cut by max_tokens is not a training target


def evolution_reason(original: str, evolved: str, rules: EliminationRules) -> str | None:
    """Checks on the evolved instruction alone, before paying for its answer."""
    if not evolved.strip():
        return "empty_evolution"
    lowered = evolved.lower()
    if any(marker in lowered for marker in rules.scaffolding):
        return "copied_prompt_scaffolding"
    if evolved.strip() == original.strip():
        return "no_information_gain"
    return None


def judged_equal(judgement: str) -> bool:
    """The equality prompt's verdict: 'Equal' without 'Not Equal'."""
    text = judgement.strip().lower()
    return "equal" in text and "not equal" not in text


def answer_reason(answer: str, finish_reason: str | None, rules: EliminationRules) -> str | None:
    """Checks on the answer to an evolved instruction."""
    words = answer.split()
    if not words:
        return "empty_answer"
    if rules.refusal_word in answer.lower() and len(words) < rules.refusal_max_words:
        return "refusal"
    tokens = [t for t in re.split(r"[\s" + re.escape(string.punctuation) + "]+", answer.lower()) if t]
    if all(t in STOP_WORDS for t in tokens):
        return "only_punctuation_or_stop_words"
    if rules.drop_truncated_answers and finish_reason == "length":
        return "truncated_answer"
    return None
