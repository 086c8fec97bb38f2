"""A review directory: the state file, the journal, and the one way decisions get into them.

    review_dir/
      review.json     the state: what is reviewed (the sample, or the A/B pairs) and every item's current decision
      journal.jsonl   every decision ever posted, in order, stale ones included (append-only, fsynced)

A decision is appended to the journal first, then the state file is rewritten (temp file + rename), so a crash
leaves the old state or the new one, never half of one; a decision the journal has and the state lacks (a crash
between the two writes) is replayed when the directory is opened. Each item carries a `version`: a decision names
the version it was made on, and one made on a stale version (the item was decided meanwhile, e.g. in another tab)
is refused, journaled with `accepted: false`, and the current decision is returned instead, so nothing is lost.

A state file edited by hand into an invalid state is a `TunesmithError` naming the file and the field.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_json

STATE_FILE = "review.json"
JOURNAL_FILE = "journal.jsonl"
FORMAT = 1
SAMPLE_ACTIONS = ("keep", "reject", "score", "edit")
PREFERENCE_ACTIONS = ("left", "right", "tie")
_FIX = "fix the field (every decision is also in journal.jsonl), or start the review again in a new directory"


# ------------------------------------------------------------------------------------------------ the state file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SampleDecision(_Strict):
    """A sampled record's review: a rating (keep, reject or a 1-5 score; the latest key wins) and an edited reply."""

    rating: Literal["keep", "reject", 1, 2, 3, 4, 5] | None = None
    edited: str | None = None  # the reviewer's reply, replacing the record's final assistant turn
    at: str | None = None

    @field_validator("rating", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 to Python; a hand-edited `true` is not a score
            raise ValueError('must be "keep", "reject", an integer score 1-5, or null')
        return value


class SampleItem(_Strict):
    """One sampled record, as it was when the sample was drawn."""

    id: str
    index: int = Field(ge=0)  # position among the set's records (0-based)
    where: str  # file:line
    hash: str  # Record.content_hash() when sampled: the set must not change under the review
    messages: list[dict[str, Any]] = Field(min_length=1)
    version: int = Field(0, ge=0)
    decision: SampleDecision = Field(default_factory=SampleDecision)


class SampleSource(_Strict):
    path: str
    sha256: str
    records: int = Field(ge=1)
    fraction: float = Field(gt=0, le=1)
    min_score: int = Field(3, ge=1, le=5)  # a scored item passes at this score or above
    threshold: float = Field(0.7, ge=0, le=1)  # the set passes when the pass rate's lower bound reaches this


class PreferenceItem(_Strict):
    """One held-out prompt and the two models' outputs; `swap` shows B on the left."""

    id: str
    suite: str
    case: str
    prompt: str | None = None
    output_a: str
    output_b: str
    swap: bool
    version: int = Field(0, ge=0)
    preferred: Literal["A", "B", "tie"] | None = None
    at: str | None = None


class PreferenceSource(_Strict):
    a: str
    b: str
    names: list[str] = Field(min_length=2, max_length=2)
    suite: str | None = None


class SampleState(_Strict):
    format: Literal[1]
    kind: Literal["sample"]
    created: str
    seed: int
    seq: int = Field(0, ge=0)  # the last journal entry applied
    source: SampleSource
    items: list[SampleItem] = Field(min_length=1)


class PreferenceState(_Strict):
    format: Literal[1]
    kind: Literal["preference"]
    created: str
    seed: int
    seq: int = Field(0, ge=0)
    source: PreferenceSource
    items: list[PreferenceItem] = Field(min_length=1)


State = SampleState | PreferenceState
Item = SampleItem | PreferenceItem
KINDS = {"sample": SampleState, "preference": PreferenceState}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def state_path(review_dir: str | Path) -> Path:
    return Path(review_dir) / STATE_FILE


def _field(loc: tuple) -> str:
    """A pydantic location as the JSON path a person would write: items[3].decision.rating."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_state(obj: Any, path: Path) -> State:
    """Validate a state object read from `path`; every problem names the file and the field."""
    if not isinstance(obj, dict):
        raise TunesmithError("Invalid review state", [Problem(f"{path} [(top level)]", "expected a JSON object", _FIX)])
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # a hand-edited {"kind": {...}} is not hashable
        raise TunesmithError(
            "Invalid review state",
            [Problem(f"{path} [kind]", f"unknown review kind {kind!r}", 'expected "sample" or "preference"')],
        )
    try:
        state = KINDS[kind].model_validate(obj)
    except ValidationError as exc:
        problems = [
            Problem(f"{path} [{_field(e['loc'])}]", str(e["msg"]).removeprefix("Value error, "), _FIX)
            for e in exc.errors()
        ]
        raise TunesmithError.capped("Invalid review state", problems) from None
    _check_items(state, path)
    return state


def _check_items(state: State, path: Path) -> None:
    """What the schema cannot say: unique ids; a sampled record inside the set and with a reply to review."""
    problems, seen = [], set()
    for i, item in enumerate(state.items):
        if item.id in seen:
            problems.append(Problem(f"{path} [items[{i}].id]", f"duplicate item id {item.id!r}", _FIX))
        seen.add(item.id)
        if isinstance(item, SampleItem):
            if item.index >= state.source.records:
                problems.append(
                    Problem(
                        f"{path} [items[{i}].index]",
                        f"{item.index} is past the set's {state.source.records} records",
                        _FIX,
                    )
                )
            if Record(messages=item.messages).final_assistant_index() is None:
                problems.append(Problem(f"{path} [items[{i}].messages]", "no assistant reply to review", _FIX))
    if problems:
        raise TunesmithError.capped("Invalid review state", problems)


def read_state(review_dir: str | Path) -> State:
    """The state file as written (no journal replay)."""
    path = state_path(review_dir)
    if not path.is_file():
        raise TunesmithError(
            "No review here", [Problem(str(path), "no review state file", "start one: tunesmith review sample|ab ...")]
        )
    data = path.read_bytes()
    try:
        obj = json.loads(data.decode("utf-8-sig"))  # a BOM (Notepad) is not part of the JSON
    except json.JSONDecodeError as exc:
        raise TunesmithError(
            "Invalid review state", [Problem(f"{path}:{exc.lineno}", f"not valid JSON ({exc})", _FIX)]
        ) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TunesmithError(
            "Invalid review state", [Problem(f"{path}:{line}", f"not UTF-8 ({exc.reason})", _FIX)]
        ) from None
    except (RecursionError, ValueError) as exc:  # nested past Python's stack, or an int of 4,300+ digits
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise TunesmithError(
            "Invalid review state", [Problem(f"{path} [(top level)]", f"not valid JSON ({what})", _FIX)]
        ) from None
    return parse_state(obj, path)


def load_state(review_dir: str | Path) -> tuple[State, int]:
    """(state, replayed): the state file plus the journal's accepted decisions it lacks (a crash between the two
    writes); `replayed` counts those, so a caller that writes can save them."""
    state = read_state(review_dir)
    replayed = 0
    for entry in read_journal(review_dir):
        if entry.get("seq", 0) > state.seq and entry.get("accepted"):
            item = next((it for it in state.items if it.id == entry.get("item")), None)
            try:
                if item is not None:
                    apply_action(state, item, entry.get("action"), entry.get("value"), entry.get("at") or now())
            except DecisionError as exc:
                raise TunesmithError(
                    "Invalid review journal",
                    [Problem(f"{Path(review_dir) / JOURNAL_FILE} [seq {entry['seq']}]", str(exc), _FIX)],
                ) from None
            state.seq = entry["seq"]
            replayed += 1
    return state, replayed


# How an error names each kind of review: (in its title, in its problem).
_KIND_NAMES = {
    "sample": ("a sample review", "a sample review"),
    "preference": ("an A/B review", "an A/B preference review"),
}


def load_review(review_dir: str | Path, kind: str) -> State:
    """`load_state`'s state, which must be a review of `kind` ("sample" or "preference"); an error names the other."""
    state = load_state(review_dir)[0]
    if state.kind != kind:
        other = next(k for k in _KIND_NAMES if k != kind)
        raise TunesmithError(
            f"Not {_KIND_NAMES[kind][0]}",
            [
                Problem(
                    str(state_path(review_dir)),
                    f"holds {_KIND_NAMES[other][1]}",
                    f"give the directory of {_KIND_NAMES[kind][1]}",
                )
            ],
        )
    return state


def save_state(review_dir: str | Path, state: State) -> Path:
    return atomic_write_json(state_path(review_dir), state.model_dump(mode="json"))


# ---------------------------------------------------------------------------------------------------- the journal


def read_journal(review_dir: str | Path) -> list[dict]:
    """The journal's entries; a torn last line (a crash mid-append) is skipped, a bad line elsewhere is an error."""
    path = Path(review_dir) / JOURNAL_FILE
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("utf-8"))  # ValueError covers a line that is not UTF-8, and huge ints
            if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                raise ValueError("an entry is an object with an integer `seq`")
        except (ValueError, RecursionError) as exc:
            if number == len(lines):
                break
            raise TunesmithError(
                "Invalid review journal", [Problem(f"{path}:{number}", str(exc), "remove or repair the line")]
            ) from None
        out.append(entry)
    return out


def append_journal(review_dir: str | Path, entry: dict) -> None:
    """One line, flushed and fsynced before the state file is touched."""
    with open(Path(review_dir) / JOURNAL_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------------- decisions


class DecisionError(ValueError):
    """A decision the item's kind does not take (unknown action, a score outside 1-5, an edit that is no text)."""


def apply_action(state: State, item: Item, action: str, value: Any, at: str) -> None:
    """Apply one decision to `item` (no version check) and bump its version."""
    if isinstance(item, SampleItem):
        _apply_sample(item, action, value)
        item.decision.at = at
    else:
        if action not in PREFERENCE_ACTIONS:
            raise DecisionError(f"unknown action {action!r}: expected one of {', '.join(PREFERENCE_ACTIONS)}")
        item.preferred = "tie" if action == "tie" else ("A" if (action == "left") != item.swap else "B")
        item.at = at
    item.version += 1


def _apply_sample(item: SampleItem, action: str, value: Any) -> None:
    if action in ("keep", "reject"):
        item.decision.rating = action
    elif action == "score":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise DecisionError(f"a score is an integer 1-5, got {value!r}")
        item.decision.rating = value
    elif action == "edit":
        if not isinstance(value, str):
            raise DecisionError("an edit is the new reply as text")
        # Saving the original text back undoes the edit.
        item.decision.edited = None if value == original_reply(item) else value
    else:
        raise DecisionError(f"unknown action {action!r}: expected one of {', '.join(SAMPLE_ACTIONS)}")


def original_reply(item: SampleItem) -> str:
    return Record(messages=item.messages).reply or ""


def is_decided(item: Item) -> bool:
    return item.decision.rating is not None if isinstance(item, SampleItem) else item.preferred is not None


def first_undecided(state: State, after: int = -1) -> int | None:
    """The position of the first undecided item after `after` (wrapping around), None when all are decided."""
    n = len(state.items)
    return next(((after + 1 + k) % n for k in range(n) if not is_decided(state.items[(after + 1 + k) % n])), None)


def describe(item: Item) -> str:
    """The item's current decision in words, as the page shows it."""
    if isinstance(item, SampleItem):
        rating = item.decision.rating
        text = {None: "undecided", "keep": "kept", "reject": "rejected"}.get(rating, f"score {rating}")
        return text + (", reply edited" if item.decision.edited is not None else "")
    if item.preferred is None:
        return "undecided"
    if item.preferred == "tie":
        return "tie"
    return "left better" if (item.preferred == "A") != item.swap else "right better"


class ReviewStore:
    """A review directory opened for deciding: one lock, decisions journaled then saved, the state file re-read
    when something else (a hand edit, another process) changed it."""

    def __init__(self, review_dir: str | Path) -> None:
        self.dir = Path(review_dir)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.on_change = None  # called with the state after each accepted decision (e.g. to write a summary)
        with self._lock:
            self.state = self._load()

    def _file_stamp(self) -> tuple[int, int]:
        st = state_path(self.dir).stat()
        return st.st_mtime_ns, st.st_size

    def _load(self) -> State:
        state, replayed = load_state(self.dir)
        if replayed:
            save_state(self.dir, state)
        self._stamp = self._file_stamp()
        return state

    def current(self) -> State:
        """The state, re-read first when the file changed under us (raises TunesmithError when it is invalid)."""
        with self._lock:
            if self._file_stamp() != self._stamp:
                self.state = self._load()
            return self.state

    def item(self, item_id: str) -> Item | None:
        return next((it for it in self.current().items if it.id == item_id), None)

    def decide(self, item_id: str, version: int, action: str, value: Any = None) -> tuple[bool, Item]:
        """(accepted, the item now). Refused (False) when `version` is stale; journaled either way. Raises
        KeyError for an unknown item and DecisionError for a decision the item does not take."""
        with self._lock:
            if self._file_stamp() != self._stamp:
                self.state = self._load()
            state = self.state
            pos = next((i for i, it in enumerate(state.items) if it.id == item_id), None)
            if pos is None:
                raise KeyError(item_id)
            item = state.items[pos]
            accepted, at = version == item.version, now()
            # Validated stale or not (raises before anything is written): a decision the item does not take is
            # a 400, never a conflict, and never reaches the journal.
            trial = item.model_copy(deep=True)
            apply_action(state, trial, action, value, at)
            entry = {
                "seq": state.seq + 1,
                "at": at,
                "item": item_id,
                "version": version,
                "action": action,
                "value": value,
                "accepted": accepted,
                "current_version": item.version,
            }
            append_journal(self.dir, entry)
            state.seq += 1
            if accepted:
                state.items[pos] = item = trial
            save_state(self.dir, state)
            self._stamp = self._file_stamp()
            if accepted and self.on_change is not None:
                self.on_change(state)
            return accepted, item
