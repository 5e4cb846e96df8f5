"""Versioned judge prompt templates (files under prompts/) and the schemas their replies must validate against.

A template's version is its file name (`grade-v1`); it is part of every cache key, so changing what a judge
is asked never reuses answers to the old question. The judge always sees the reference when there is one.
Answers are data: closing tags inside them are defused so an answer cannot end its own block.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hone.errors import dotted, problem
from hone.judge.base import JudgeRequest
from hone.records import Task

GRADE = "grade-v1"
PAIRWISE = "pairwise-v1"
REASK = "reask-v1"

_SECTION = re.compile(r"^=== (system|user) ===\n", re.M)
_DATA_TAGS = ("question", "reference", "tests", "answer")


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: Template


@lru_cache(maxsize=None)
def load_template(version: str) -> PromptTemplate:
    text = resources.files("hone.judge").joinpath("prompts").joinpath(f"{version}.txt").read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = dict(zip(parts[1::2], parts[2::2]))
    return PromptTemplate(version, sections.get("system", "").strip(), Template(sections["user"].strip()))


def _data(text: str) -> str:
    """Defuse closing tags of the prompt's own blocks inside data (`</answer>` -> `< /answer>`)."""
    for tag in _DATA_TAGS:
        text = re.sub(rf"</\s*{tag}", f"< /{tag}", text, flags=re.I)
    return text


def render_question(task: Task) -> str:
    """The task as the judge reads it: the prompt, or the conversation as a labelled transcript."""
    chat = task.chat()
    if len(chat) == 1:
        return chat[0]["content"]
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in chat)


def reference_block(task: Task) -> str:
    if task.reference:
        block = f"<reference>\n{_data(task.reference)}\n</reference>"
    else:
        block = ("<reference>\n(none: this task has no reference answer; judge on your own whether the answer is "
                 "correct and complete)\n</reference>")
    if task.tests:
        block += f"\n\n<tests>\n{_data(task.tests)}\n</tests>"
    return block


def grade_request(task: Task, answer: str, max_tokens: int) -> JudgeRequest:
    t = load_template(GRADE)
    user = t.user.substitute(id=task.id, question=_data(render_question(task)), reference_block=reference_block(task),
                             answer=_data(answer))
    return JudgeRequest(GRADE, t.system, (("user", user),), max_tokens)


def pairwise_request(task: Task, answer_a: str, answer_b: str, max_tokens: int) -> JudgeRequest:
    t = load_template(PAIRWISE)
    user = t.user.substitute(id=task.id, question=_data(render_question(task)), reference_block=reference_block(task),
                             answer_a=_data(answer_a), answer_b=_data(answer_b))
    return JudgeRequest(PAIRWISE, t.system, (("user", user),), max_tokens)


def reask_request(request: JudgeRequest, reply: str, problem: str, item_id: str) -> JudgeRequest:
    """The same conversation plus the invalid reply and a request to answer again in the schema."""
    follow = load_template(REASK).user.substitute(problem=problem, id=item_id)
    messages = request.messages + (("assistant", reply or "(empty reply)"), ("user", follow))
    return JudgeRequest(f"{request.template}+{REASK}", request.system, messages, request.max_tokens)


class GradeReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    verdict: Literal["pass", "fail"]
    score: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1, max_length=2000)


class PairReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    winner: Literal["A", "B", "tie"]
    reason: str = Field(min_length=1, max_length=2000)


class InvalidReply(Exception):
    """A reply that is not the JSON object the template asks for; the message says what is wrong."""


def _json_object(text: str) -> dict:
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S)
    if fenced:
        body = fenced.group(1)
    candidates = [body]
    if "{" in body and "}" in body:
        candidates.append(body[body.index("{"): body.rindex("}") + 1])
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise InvalidReply("it is not a JSON object")


def parse_reply(text: str, schema: type[GradeReply] | type[PairReply], item_id: str) -> GradeReply | PairReply:
    obj = _json_object(text)
    try:
        reply = schema.model_validate(obj)
    except ValidationError as e:
        loc, msg = problem(e)
        raise InvalidReply(f"field `{dotted(loc) or 'object'}`: {msg}") from None
    if reply.id != item_id:
        raise InvalidReply(f"it is about item {reply.id!r}, not {item_id!r}")
    return reply
