"""Prompt texts for Self-Instruct (Wang et al., 2022) and Evol-Instruct (Xu et al., 2023).

The framing lines and layouts follow the original repositories (yizhongw/self-instruct templates,
nlpxucan/WizardLM Evol_Instruct) so a model sees the same task format; the few-shot demonstrations
are our own, written for this project, in the same shapes ("Task: ... / Is it classification?",
"Class label:" output-first blocks, "Example N / Input: / Output:" input-first blocks).
"""
from __future__ import annotations

import re

# --- Self-Instruct: instruction generation (bootstrap_instructions.py, encode_prompt) ---------------

TASKS_HEADER = "Come up with a series of tasks:\n"
CLASSIFICATION_TASKS_HEADER = ("Come up with a series of classification tasks. "
                               "Try to specify the possible output labels when possible.\n")


def encode_bootstrap_prompt(instructions: list[str], classification: bool = False) -> str:
    """A numbered list of the sampled instructions, ending with the next number for the model to continue."""
    prompt = CLASSIFICATION_TASKS_HEADER if classification else TASKS_HEADER
    for index, instruction in enumerate(instructions, 1):
        cleaned = re.sub(r"\s+", " ", instruction).strip().rstrip(":")
        prompt += f"{index}. {cleaned}\n"
    return prompt + f"{len(instructions) + 1}."


# --- Self-Instruct: classification identification (identify_clf_or_not.py) ------------------------

_CLASSIFICATION_DEMOS = [
    ("Decide whether the given email asks for a meeting or not.", True),
    ("Write a short poem about a lighthouse in winter.", False),
    ("Tell me whether the number in the input is prime.", True),
    ("Summarize the paragraph in one sentence.", False),
    ("Label the sentiment of the product review as positive, negative or neutral.", True),
    ("Suggest three names for a bakery that sells bread made with local grain.", False),
    ("Given a sentence, say which tense its main verb is in: past, present or future.", True),
    ("Explain how a bicycle gear changes the effort needed to pedal uphill.", False),
    ("Is the following statement a fact or an opinion?", True),
    ("Convert the recipe quantities from cups to grams.", False),
    ("Pick the odd one out in the list of words.", True),
    ("Plan a one-day walking route through an old town.", False),
    ("Detect whether the code snippet contains an infinite loop. Answer yes or no.", True),
    ("Rewrite the message so that it sounds more polite.", False),
    ("Select the answer (A, B, C or D) that best completes the sentence.", True),
    ("List the steps to replace a flat tyre on a car.", False),
]

CLASSIFICATION_TEMPLATE = ("Can the following task be regarded as a classification task with finite output labels?\n\n"
                           + "".join(f"Task: {task}\nIs it classification? {'Yes' if label else 'No'}\n\n"
                                     for task, label in _CLASSIFICATION_DEMOS)
                           + "Task:")


def classification_prompt(instruction: str) -> str:
    return CLASSIFICATION_TEMPLATE + " " + instruction.strip() + "\n" + "Is it classification?"


# --- Self-Instruct: instance generation (generate_instances.py) ---------------------------------------

OUTPUT_FIRST_TEMPLATE = """Given the classification task definition and the class labels, generate an input that corresponds to each of the class labels. If the task doesn't require input, just generate possible class labels.

Task: Decide whether the customer message is a complaint or a compliment.
Class label: Complaint
Message: The parcel arrived two weeks late and the box was crushed.
Class label: Compliment
Message: Your support team solved my problem in five minutes, thank you!

Task: Tell me whether the number is even or odd.
Class label: Even
Number: 148
Class label: Odd
Number: 2023

Task: Classify the sentence as a question, a command or a statement.
Class label: Question
Sentence: Where did you leave the keys?
Class label: Command
Sentence: Close the window before you leave.
Class label: Statement
Sentence: The museum opens at nine on weekdays.

Task: Which planet in our solar system is the largest?
Class label: Jupiter

Task: Given a review of a film, say whether the reviewer would recommend it. Answer Yes or No.
Class label: Yes
Review: The plot twists kept me guessing until the last scene, and the music was wonderful.
Class label: No
Review: Two hours of slow dialogue and a predictable ending; I almost fell asleep.

Task:"""

INPUT_FIRST_TEMPLATE = """Come up with examples for the following tasks. Try to generate multiple examples when possible. If the task doesn't require additional input, you can generate the output directly.

Task: Name three vegetables that grow well in cold weather.
Output:
- Kale
- Brussels sprouts
- Leeks

Task: Turn the sentence into the passive voice.
Example 1
Sentence: The committee approved the new budget.
Output: The new budget was approved by the committee.
Example 2
Sentence: A storm damaged the old bridge.
Output: The old bridge was damaged by a storm.

Task: Convert 5 kilometres to miles.
Output: 5 km is about 3.11 miles.

Task: Find the largest number in the list.
Example 1
List: [4, 17, -3, 9]
Output: 17
Example 2
List: [0.5, 0.25, 2.75]
Output: 2.75

Task: Write a short thank-you note to a neighbour who watered your plants.
Output: Dear Sam, thank you so much for looking after my plants while I was away. They have never looked greener! Please come over for coffee this week.

Task:"""


def instance_prompt(instruction: str, classification: bool) -> str:
    """Output-first for classification (labels then inputs), input-first otherwise, as in the paper."""
    template = OUTPUT_FIRST_TEMPLATE if classification else INPUT_FIRST_TEMPLATE
    return template + " " + instruction.strip() + "\n"


# --- Evol-Instruct (WizardLM Evol_Instruct/depth.py, breadth.py; paper appendix) ----------------------

EVOL_SYSTEM = "You are a helpful assistant."

_DEPTH_BASE = (
    "I want you act as a Prompt Rewriter.\n"
    "Your objective is to rewrite a given prompt into a more complex version to make those famous AI systems "
    "(e.g., chatgpt and GPT4) a bit harder to handle.\n"
    "But the rewritten prompt must be reasonable and must be understood and responded by humans.\n"
    "Your rewriting cannot omit the non-text parts such as the table and code in #The Given Prompt#:. "
    "Also, please do not omit the input in #The Given Prompt#.\n"
    "You SHOULD complicate the given prompt using the following method:\n{method}\n"
    "You should try your best not to make the #Rewritten Prompt# become verbose, #Rewritten Prompt# can only "
    "add 10 to 20 words into #The Given Prompt#.\n"
    "'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not allowed to "
    "appear in #Rewritten Prompt#\n"
    "#The Given Prompt#:\n{instruction}\n"
    "#Rewritten Prompt#:\n"
)

DEPTH_METHODS = {
    "add_constraints": "Please add one more constraints/requirements into #The Given Prompt#.",
    "deepen": "If #The Given Prompt# contains inquiries about certain issues, the depth and breadth of the "
              "inquiry can be increased.",
    "concretize": "Please replace general concepts with more specific concepts.",
    "increase_reasoning": "If #The Given Prompt# can be solved with just a few simple thinking processes, you can "
                          "rewrite it to explicitly request multiple-step reasoning.",
    "complicate_input": "Please add a concrete, more complex input to #The Given Prompt# (for example a table, "
                        "code, a formula or data in a structured format) that the task must be performed on.",
}

BREADTH_TEMPLATE = (
    "I want you act as a Prompt Creator.\n"
    "Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.\n"
    "This new prompt should belong to the same domain as the #Given Prompt# but be even more rare.\n"
    "The LENGTH and complexity of the #Created Prompt# should be similar to that of the #Given Prompt#.\n"
    "The #Created Prompt# must be reasonable and must be understood and responded by humans.\n"
    "'#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed to appear in "
    "#Created Prompt#\n"
    "#Given Prompt#:\n{instruction}\n"
    "#Created Prompt#:\n"
)

EVOL_OPERATIONS = tuple(DEPTH_METHODS) + ("breadth",)

EQUALITY_TEMPLATE = (
    "Here are two Instructions to ChatGPT AI, do you think they are equal to each other, which meet the following "
    "requirements:\n1. They have same constraints and requirments.\n2. They have same depth and breadth of the "
    "inquiry.\nThe First Prompt: {first}\nThe Second Prompt: {second}\n"
    "Your Judgement (Just answer: Equal or Not Equal. No need to explain the reason.):"
)


def evolve_prompt(instruction: str, operation: str) -> str:
    if operation == "breadth":
        return BREADTH_TEMPLATE.format(instruction=instruction)
    return _DEPTH_BASE.format(method=DEPTH_METHODS[operation], instruction=instruction)


def equality_prompt(first: str, second: str) -> str:
    return EQUALITY_TEMPLATE.format(first=first, second=second)
