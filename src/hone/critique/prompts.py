"""The critique, rewrite and reverse-pair prompts, versioned: a changed wording is a changed stage config.

Self-critique prompts have no slot for the reference answer at all; only the distillation prompt has one,
so a rewrite that saw the reference cannot be produced under the self-critique label.
"""

from __future__ import annotations

PROMPT_VERSION = "critique-v1"

CRITIQUE_REQUEST = (
    "Your answer above was checked and judged incorrect.\n\n"
    "What the checker reported:\n{feedback}\n\n"
    "Review your answer step by step: say what is wrong with it and why. "
    "Do not write the corrected answer yet."
)

CRITIQUE_REQUEST_WITH_REFERENCE = (
    "Your answer above was checked and judged incorrect.\n\n"
    "What the checker reported:\n{feedback}\n\n"
    "A reference answer to the task:\n{reference}\n\n"
    "Compare your answer with the reference step by step: say what is wrong with yours and why. "
    "Do not write the corrected answer yet."
)

REWRITE_REQUEST = (
    "Now write the corrected answer to the original task, in the form the task asks for. "
    "Reply with the answer only, without mentioning this review."
)

REVERSE_REQUEST = "Here is an answer:\n\n{answer}\n\nWrite the question or task that it answers."


def critique_request(feedback: str, reference: str | None = None) -> str:
    """Turn 1. `reference` is given only in distillation mode."""
    if reference is None:
        return CRITIQUE_REQUEST.format(feedback=feedback)
    return CRITIQUE_REQUEST_WITH_REFERENCE.format(feedback=feedback, reference=reference)


def reverse_request(answer: str) -> str:
    return REVERSE_REQUEST.format(answer=answer)
