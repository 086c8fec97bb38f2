"""Eval cases and suites (design §5).

An eval case: `messages` (the prompt), `expected` (label, text, JSON object, number — a math task's held-out case
expects the number its worked solution ends with —, tool calls, or none),
`behavior` (answer | refuse | escalate | clarify | abstain), `kind` (task | redteam | out_of_domain | general),
`tags` (slices), and optionally `scorers` (a list of scorer specs, see `tunesmith.scorer_specs.SCORER_KEYS`) and
IFEval's `instruction_id_list` + `kwargs` (verifiable instructions, see `tunesmith.eval.instructions`).

    cases = cases_from_records(heldout, task)          # the held-out split as a suite
    cases = load_suite("eval/redteam.jsonl", task)     # a suite file (tunesmith's format or IFEval's)
    cases = general_probe()                            # the built-in 150-prompt instruction-following probe

A suite line that cannot be read does not stop the others: it becomes a case with `error` set, which is recorded
in the results with its file:line and field and scores nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config import TaskConfig
from tunesmith.data.answers import numeric_answer
from tunesmith.data.coverage import reply_behavior
from tunesmith.data.io import read_jsonl
from tunesmith.data.messages import RecordError, parse_message
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.instructions import INSTRUCTION_IDS, kwargs_problem
from tunesmith.scorer_specs import needs_judge, scorer_problem

BEHAVIORS = ("answer", "refuse", "escalate", "clarify", "abstain")
KINDS = ("task", "redteam", "out_of_domain", "general")


@dataclass
class EvalCase:
    id: str
    messages: list[dict[str, Any]]
    expected: Any = None
    behavior: str = "answer"
    kind: str = "task"
    tags: list[str] = field(default_factory=list)
    tools: list[dict] | None = None
    where: str = ""
    scorers: list[dict] | None = None
    instructions: list[str] | None = None  # IFEval instruction ids
    instruction_kwargs: list[dict] | None = None
    error: str | None = None  # the case could not be read; it is reported, never generated

    def fingerprint(self) -> str:
        """Hash of what a model is shown (messages and tools): the generation cache's case key."""
        import hashlib

        blob = json.dumps([self.messages, self.tools], sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def with_system_prompt(messages: list[dict], task: TaskConfig) -> list[dict]:
    """Prepend the task's system prompt to a conversation that has none."""
    if task.system_prompt and not (messages and messages[0].get("role") == "system"):
        return [{"role": "system", "content": task.system_prompt}] + messages
    return messages


def expected_from_reply(reply: str | None, task: TaskConfig) -> Any:
    """The expected answer of a held-out record: the parsed JSON object for json tasks, the number a worked
    solution ends with for math tasks (`#### 72`, else its last number; a reply without a number stays text),
    else the text."""
    if reply is None:
        return None
    if task.type == "json":
        try:
            return json.loads(reply)
        except json.JSONDecodeError:
            return reply
    if task.type == "math":
        number = numeric_answer(reply)
        return reply.strip() if number is None else number
    return reply.strip()


def cases_from_records(records: list[Record], task: TaskConfig, suite: str = "heldout") -> list[EvalCase]:
    """Turn held-out conversations into cases: the prompt is everything before the final reply, and the behaviour
    expected is the one that reply shows (a held-out refusal must be refused again). A reply that calls tools is
    scored by `tool_call`, any other by `task.scorers` when the task names them."""
    cases = []
    for i, rec in enumerate(records):
        last = rec.final_assistant_index()
        calls = expected_tool_calls(rec.messages[last]) if last is not None else None
        cases.append(
            EvalCase(
                id=rec.id or f"{suite}-{i:04d}",
                messages=with_system_prompt(rec.prompt, task),
                expected=calls or expected_from_reply(rec.reply, task),
                behavior=reply_behavior(rec.reply or ""),
                kind="task",
                tags=list(rec.tags),
                tools=rec.tools,
                where=rec.where,
                scorers=[{"type": "tool_call"}] if calls else (list(task.scorers) if task.scorers else None),
            )
        )
    return cases


def expected_tool_calls(message: dict) -> dict | None:
    """`{"tool_calls": [{"name", "arguments"}]}` for an assistant turn that calls tools, else None."""
    calls = message.get("tool_calls")
    if not calls:
        return None
    return {
        "tool_calls": [
            {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or {}} for c in calls
        ]
    }


def load_suite(path: str | Path, task: TaskConfig, name: str | None = None) -> list[EvalCase]:
    """Read a suite JSONL file, in tunesmith's case format or IFEval's (`key`, `prompt`, `instruction_id_list`,
    `kwargs`). A line that cannot be read becomes a case with `error` naming file:line and field; a file that
    cannot be read at all (missing, not UTF-8 JSON lines) is a TunesmithError."""
    path = Path(path)
    name = name or path.stem
    cases = []
    for line, obj in read_jsonl(path):
        where = f"{path}:{line}"
        case_id = str(obj.get("id", obj.get("key", f"{name}-{len(cases):04d}")))
        try:
            case = _ifeval_case(obj, task) if "instruction_id_list" in obj else _case(obj, task)
        except RecordError as exc:
            hint = f" (hint: {exc.hint})" if exc.hint else ""
            cases.append(
                EvalCase(id=case_id, messages=[], where=where, error=f"{where} [{exc.field}]: {exc.message}{hint}")
            )
            continue
        case.id, case.where = case_id, where
        cases.append(case)
    ids = [c.id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dupes:  # results are paired by id, so two cases with one id would silently pair the wrong outputs
        raise TunesmithError(
            f"Bad eval suite {path}",
            [Problem(str(path), f"duplicate case id(s): {dupes[:5]}", "give every case a unique `id`")],
        )
    return cases


def _case(obj: dict, task: TaskConfig) -> EvalCase:
    """A case in tunesmith's format (design §5)."""
    raw = obj.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RecordError(
            "messages",
            "a case needs a non-empty `messages` list (the prompt)",
            '{"messages": [{"role": "user", "content": "..."}], "expected": "..."}',
        )
    messages = [parse_message(m, i) for i, m in enumerate(raw)]
    scorers = obj.get("scorers")
    if messages[-1]["role"] == "assistant":  # a full conversation: its last reply is the expectation
        calls = expected_tool_calls(messages[-1])
        expected = obj.get("expected", calls or expected_from_reply(messages[-1]["content"], task))
        if calls and scorers is None:
            scorers = [{"type": "tool_call"}]
        messages = messages[:-1]
        if not messages:
            raise RecordError(
                "messages",
                "the case has a reply but no prompt before it",
                "put the user's message before the assistant's, or leave the reply out",
            )
    else:
        expected = obj.get("expected")
    behavior = obj.get("behavior", "answer")
    if behavior not in BEHAVIORS:
        raise RecordError("behavior", f"unknown behavior {behavior!r}", f"use one of {', '.join(BEHAVIORS)}")
    kind = obj.get("kind", "task")
    if kind not in KINDS:
        raise RecordError("kind", f"unknown kind {kind!r}", f"use one of {', '.join(KINDS)}")
    tags = obj.get("tags") or []
    if not isinstance(tags, list):
        raise RecordError("tags", "tags must be a list of strings")
    if scorers is not None:
        if not isinstance(scorers, list) or not scorers:
            raise RecordError(
                "scorers",
                "scorers must be a non-empty list of scorer specs",
                '[{"type": "regex", "pattern": "^Order #\\d+"}]',
            )
        for i, spec in enumerate(scorers):
            problem = scorer_problem(spec)
            if problem:
                raise RecordError(f"scorers[{i}]", *problem)
    return EvalCase(
        id="",
        messages=with_system_prompt(messages, task),
        expected=expected,
        behavior=behavior,
        kind=kind,
        tags=[str(t) for t in tags],
        tools=obj.get("tools"),
        scorers=scorers,
    )


def _ifeval_case(obj: dict, task: TaskConfig) -> EvalCase:
    """A case in IFEval's input format: the prompt is one user turn, the instructions are checked."""
    prompt, ids, kwargs = obj.get("prompt"), obj.get("instruction_id_list"), obj.get("kwargs")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RecordError("prompt", "an IFEval case needs a non-empty string `prompt`")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise RecordError(
            "instruction_id_list", "a non-empty list of instruction ids is required", 'e.g. ["punctuation:no_comma"]'
        )
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise RecordError("kwargs", f"kwargs must be a list of {len(ids)} object(s), one per instruction")
    kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in kwargs]  # IFEval dumps pad with nulls
    for i, (iid, kw) in enumerate(zip(ids, kwargs)):
        problem = kwargs_problem(iid, kw)
        if problem:
            raise RecordError(f"kwargs[{i}]" if iid in INSTRUCTION_IDS else f"instruction_id_list[{i}]", problem)
    tags = sorted({i.split(":")[0] for i in ids})
    return EvalCase(
        id="",
        messages=[{"role": "user", "content": prompt}],
        kind="general",
        tags=tags,
        instructions=list(ids),
        instruction_kwargs=kwargs,
    )


PROBE = Path(__file__).parent / "probes" / "general.jsonl"


def general_probe(limit: int | None = None) -> list[EvalCase]:
    """tunesmith's built-in general instruction-following probe (150 IFEval-style prompts, 25 instruction types):
    did fine-tuning break general instruction following? Prompts go in without the task's system prompt."""
    cases = load_suite(PROBE, TaskConfig(), name="general")
    return cases[:limit] if limit else cases


def project_suites(cfg, project: Path) -> tuple[dict[str, list[EvalCase]], dict[str, int]]:
    """The extra suites a project declares (`eval.suites`, `eval.general_probe`) as {name: cases}, with their
    generation limits where they differ from `eval.max_new_tokens`. Suite-level scorers go to every case that
    names none; a project using custom scorers can import them from its own directory."""
    import sys

    suites: dict[str, list[EvalCase]] = {}
    limits: dict[str, int] = {}
    problems = []
    for i, entry in enumerate(cfg.eval.suites):
        spec = entry if not isinstance(entry, str) else None
        path = project / (entry if isinstance(entry, str) else entry.path)
        if not path.is_file():
            problems.append(
                Problem(
                    f"eval.suites[{i}]",
                    f"{str(path.relative_to(project))!r} not found",
                    "check the path (relative to the project)",
                )
            )
            continue
        cases = load_suite(path, cfg.task)
        if spec is not None and spec.scorers:
            _default_scorers(cases, spec.scorers, f"eval.suites[{i}].scorers")
        if spec is not None and spec.max_new_tokens:
            limits[path.stem] = spec.max_new_tokens
        suites[path.stem] = cases
    if problems:
        raise TunesmithError("Missing eval suite", problems)
    if cfg.eval.judge is None:
        problems = [p for name, cases in suites.items() if (p := _judge_missing(name, cases))]
        if problems:
            raise TunesmithError("A model grader needs a judge", problems)
    if cfg.eval.general_probe:
        suites["general"] = general_probe(cfg.eval.general_probe_limit)
        limits["general"] = cfg.eval.general_max_new_tokens
    custom = any(s.get("type") == "custom" for cases in suites.values() for c in cases for s in c.scorers or [])
    if custom and str(project) not in sys.path:  # custom scorers are `module:function` in the project directory
        sys.path.insert(0, str(project))
    return suites, limits


def _default_scorers(cases: list[EvalCase], scorers: list[dict], where: str) -> None:
    bad = [Problem(f"{where}[{i}]", *p) for i, s in enumerate(scorers) if (p := scorer_problem(s))]
    if bad:
        raise TunesmithError("Bad suite scorers", bad)
    for case in cases:
        if case.scorers is None and case.error is None:
            case.scorers = [dict(s) for s in scorers]


def _judge_missing(suite: str, cases: list[EvalCase]) -> Problem | None:
    """A problem when cases of a suite grade with score_model or label_model (which ask eval.judge)."""
    asking = [c for c in cases if any(needs_judge(s) for s in c.scorers or [])]
    if not asking:
        return None
    kinds = sorted({s["type"] for c in asking for s in c.scorers or [] if needs_judge(s)})
    return Problem(
        asking[0].where or suite,
        f"{len(asking)} case(s) of suite {suite!r} grade with {', '.join(kinds)}, which asks a judge model",
        "set eval.judge: {base_url: ..., model: ...} (an OpenAI-compatible endpoint)",
    )
