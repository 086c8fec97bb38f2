"""A reply as it is generated: token ids from the generation thread, decoded into text pieces with stop strings
cut off, cancellable from any thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunesmith.serve.model import Sampling, ServedModel


_END = object()  # the generation thread's last word on its queue


class _TokenQueue:
    """A `generate` streamer that hands each new token id to a queue (the first `put` is the prompt: skipped)."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.seen_prompt = False

    def put(self, value) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(int(token))

    def end(self) -> None:
        pass  # the thread posts _END itself, also when generate raises


class CompletionStream:
    """Text pieces of one reply, decoded as the tokens arrive. Stop strings are cut off (never sent, even in part:
    the last `len(longest stop) - 1` characters are held back until they cannot begin one). `cancel()` stops the
    generation from any thread; leaving the iteration early cancels too."""

    def __init__(self, served: ServedModel, prompt_ids: list[int], sampling: Sampling) -> None:
        self.served, self.prompt_ids, self.sampling = served, prompt_ids, sampling
        self.stops = [s for s in sampling.stop if s]
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self, streamer: _TokenQueue) -> None:
        try:
            self.served._generate(self.prompt_ids, self.sampling, streamer, self._cancel)
        except BaseException as exc:
            streamer.queue.put(exc)
        finally:
            streamer.queue.put(_END)

    def __iter__(self) -> Iterator[str]:
        eot = self.served.eot_id
        streamer = _TokenQueue()
        threading.Thread(target=self._run, args=(streamer,), daemon=True, name="tunesmith-generate").start()
        hold = max((len(s) for s in self.stops), default=1) - 1
        ids: list[int] = []
        sent = 0  # characters of the decoded text already yielded
        try:
            while True:
                item = streamer.queue.get()
                if item is _END:
                    self.finish_reason = "length"
                    break
                if isinstance(item, BaseException):
                    raise item
                if item == eot:
                    self.finish_reason = "stop"
                    break
                ids.append(item)
                self.completion_tokens = len(ids)
                text = self.served.decode(ids)
                cut = min((i for i in (text.find(s, max(0, sent - hold)) for s in self.stops) if i >= 0), default=-1)
                if cut >= 0:
                    self.finish_reason = "stop"
                    if cut > sent:
                        yield text[sent:cut]
                    return
                safe = len(text) - hold
                if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
                    safe = min(safe, len(text) - 1)
                if safe > sent:
                    yield text[sent:safe]
                    sent = safe
            text = self.served.decode(ids)
            if len(text) > sent:
                yield text[sent:]
        finally:
            self.cancel()
