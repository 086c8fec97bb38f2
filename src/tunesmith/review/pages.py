"""The review app's HTML: server-rendered pages, one stylesheet and one small script, all inline (no build step,
no files to ship). Every text from the data is escaped here; the script only ever sets `textContent`."""

from __future__ import annotations

import json
from html import escape

from tunesmith.data.records import Record
from tunesmith.review.state import Item, PreferenceItem, SampleItem, State, describe, first_undecided, is_decided

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #f6f6f4; }
header { padding: .6rem 1.2rem; background: #24292f; color: #fff; display: flex; gap: 1.2rem; align-items: baseline; }
header a { color: #cde; }
main { max-width: 72rem; margin: 1rem auto; padding: 0 1.2rem; }
.bar { display: flex; gap: 1.2rem; color: #555; margin-bottom: .8rem; }
#progress { font-weight: 600; color: #1d1d1f; }
.msg, .reply, .side { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem .8rem;
  margin: .5rem 0; }
.reply { border-color: #4a7; }
.role { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: #777; }
pre { white-space: pre-wrap; word-wrap: break-word; font: inherit; margin: .3rem 0; }
textarea { width: 100%; min-height: 12rem; font: 14px/1.4 ui-monospace, monospace; box-sizing: border-box; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.badge { background: #fe8; border-radius: 3px; padding: 0 .3rem; font-size: .8rem; }
#notice { padding: .5rem .8rem; border-radius: 6px; margin: .5rem 0; }
#notice.conflict { background: #fff3cd; border: 1px solid #e0b000; }
#notice.error { background: #fde2e1; border: 1px solid #c33; }
.keys { color: #666; font-size: .9rem; }
kbd { border: 1px solid #bbb; border-bottom-width: 2px; border-radius: 3px; padding: 0 .3rem; background: #fff; }
button { margin: .2rem .2rem .2rem 0; }
table { border-collapse: collapse; background: #fff; }
td, th { border: 1px solid #ddd; padding: .3rem .7rem; text-align: left; }
"""

SCRIPT = r"""
"use strict";
(function () {
  var root = document.getElementById("review");
  if (!root) { return; }
  var d = root.dataset;
  var version = Number(d.version);
  var busy = false;
  var notice = document.getElementById("notice");
  var decision = document.getElementById("decision");
  var progress = document.getElementById("progress");
  var reply = document.getElementById("reply");
  var editor = document.getElementById("editor");
  var ACTIONS = d.kind === "sample"
    ? {k: ["keep"], r: ["reject"], "1": ["score", 1], "2": ["score", 2], "3": ["score", 3], "4": ["score", 4],
       "5": ["score", 5]}
    : {a: ["left"], b: ["right"], t: ["tie"]};

  function say(text, kind) {
    notice.textContent = text;
    notice.className = kind;
    notice.hidden = false;
  }

  function go(url) {
    if (url && !busy) { window.location.assign(url); }
  }

  function decide(action, value) {
    if (busy || !d.api) { return; }
    busy = true;  // stays set after a success: the page is being replaced
    fetch(d.api, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
                  body: JSON.stringify({version: version, action: action, value: value === undefined ? null : value})})
      .then(function (resp) { return resp.json().then(function (body) { return [resp.status, body]; }); })
      .then(function (res) {
        var status = res[0], body = res[1];
        if (status === 200) {
          window.location.assign(action === "edit" ? d.self : body.next);
          return;
        }
        busy = false;
        if (status === 409) {  // decided elsewhere meanwhile: show what stands now; a new key press overrides it
          version = body.item.version;
          decision.textContent = body.item.decision;
          if (progress && body.progress) { progress.textContent = body.progress.text; }
          if (reply && typeof body.item.reply === "string") { reply.textContent = body.item.reply; }
          say(body.message, "conflict");
        } else {
          var problems = (body.problems || []).join(" ");
          say((body.message || ("Not saved (HTTP " + status + ").")) + (problems ? " " + problems : ""), "error");
        }
      })
      .catch(function (err) { busy = false; say("Not saved: " + err, "error"); });
  }

  function openEditor() {
    editor.hidden = false;
    reply.hidden = true;
    editor.focus();
    editor.setSelectionRange(editor.value.length, editor.value.length);
  }

  function closeEditor() {
    editor.value = reply.textContent;
    editor.hidden = true;
    reply.hidden = false;
  }

  function handle(key) {
    if (key === "n" || key === "ArrowRight") { go(d.next); return true; }
    if (key === "p" || key === "ArrowLeft") { go(d.prev); return true; }
    if (key === "e" && editor) { openEditor(); return true; }
    var act = ACTIONS[key];
    if (act && d.api) { decide(act[0], act[1]); return true; }
    return false;
  }

  document.addEventListener("keydown", function (ev) {
    if (editor && ev.target === editor) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); decide("edit", editor.value); }
      else if (ev.key === "Escape") { ev.preventDefault(); closeEditor(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) { return; }
    var key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (handle(key)) { ev.preventDefault(); }  // keeps "e" out of the editor it just opened
  });

  Array.prototype.forEach.call(document.querySelectorAll("button[data-key]"), function (button) {
    button.addEventListener("click", function () { handle(button.dataset.key); button.blur(); });
  });
})();
"""


def _attrs(data: dict) -> str:
    return "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items() if v is not None)


def layout(title: str, body: str, data: dict | None = None) -> str:
    """A whole page: header, `body` inside <main id="review"> with `data` as data- attributes, the script."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)} · tunesmith review</title><link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head>\n<body><header><strong>tunesmith review</strong>"
        f'<span>{escape(title)}</span><a href="/summary">summary</a></header>\n'
        f'<main id="review"{_attrs(data or {})}>\n{body}\n</main>\n<script>{SCRIPT}</script></body></html>\n'
    )


def progress_text(state: State) -> str:
    done = sum(1 for it in state.items if is_decided(it))
    return f"{done} / {len(state.items)} {'scored' if state.kind == 'sample' else 'judged'}"


def _text(msg: dict) -> str:
    content = msg.get("content")
    if msg.get("tool_calls"):
        calls = json.dumps(msg["tool_calls"], ensure_ascii=False, indent=1)
        return f"{content}\n{calls}" if content else calls
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _buttons(keys: list[tuple[str, str]]) -> str:
    return "".join(
        f'<button type="button" data-key="{escape(k)}">{escape(label)} <kbd>{escape(k)}</kbd></button>'
        for k, label in keys
    )


def _bar(state: State, pos: int, extra: str = "") -> str:
    return (
        f'<div class="bar"><span id="progress">{progress_text(state)}</span>'
        f'<span id="position">item {pos + 1} of {len(state.items)}</span>{extra}</div>'
        '<div id="notice" role="status" hidden></div>'
    )


def sample_body(state: State, pos: int, item: SampleItem) -> str:
    rec = Record(messages=item.messages)
    last = rec.final_assistant_index()
    prompt = "".join(
        f'<div class="msg"><div class="role">{escape(str(m.get("role")))}</div><pre>{escape(_text(m))}</pre></div>'
        for m in item.messages[:last]
    )
    original = _text(item.messages[last])
    shown = item.decision.edited if item.decision.edited is not None else original
    is_edited = item.decision.edited is not None
    edited = ' <span class="badge" id="edited">edited</span>' if is_edited else ""
    was = f"<details><summary>original reply</summary><pre>{escape(original)}</pre></details>" if is_edited else ""
    return (
        _bar(state, pos, f'<span id="where">{escape(item.where)}</span>')
        + prompt
        + f'<div class="reply"><div class="role">assistant reply{edited}</div>'
        f'<pre id="reply">{escape(shown)}</pre><textarea id="editor" hidden>{escape(shown)}</textarea>{was}</div>'
        f'<p>Decision: <strong id="decision">{escape(describe(item))}</strong></p>'
        + _buttons(
            [("k", "keep"), ("r", "reject")]
            + [(str(s), f"score {s}") for s in range(1, 6)]
            + [("e", "edit reply"), ("p", "previous"), ("n", "next")]
        )
        + '<p class="keys"><kbd>k</kbd> keep · <kbd>r</kbd> reject · <kbd>1</kbd>-<kbd>5</kbd> score · '
        "<kbd>e</kbd> edit the reply (<kbd>ctrl</kbd>+<kbd>enter</kbd> saves, <kbd>esc</kbd> cancels) · "
        "<kbd>n</kbd>/<kbd>→</kbd> next · <kbd>p</kbd>/<kbd>←</kbd> previous</p>"
    )


def preference_body(state: State, pos: int, item: PreferenceItem) -> str:
    left, right = (item.output_b, item.output_a) if item.swap else (item.output_a, item.output_b)
    prompt = escape(item.prompt) if item.prompt is not None else "<em>(no prompt recorded)</em>"
    return (
        _bar(state, pos) + f'<div class="msg"><div class="role">prompt</div><pre id="prompt">{prompt}</pre></div>'
        f'<div class="pair"><div class="side"><div class="role">left</div><pre id="left">{escape(left)}</pre>'
        f'</div><div class="side"><div class="role">right</div><pre id="right">{escape(right)}</pre></div></div>'
        f'<p>Decision: <strong id="decision">{escape(describe(item))}</strong></p>'
        + _buttons([("a", "left better"), ("t", "tie"), ("b", "right better"), ("p", "previous"), ("n", "next")])
        + '<p class="keys"><kbd>a</kbd> left better · <kbd>b</kbd> right better · <kbd>t</kbd> tie · '
        "<kbd>n</kbd>/<kbd>→</kbd> next · <kbd>p</kbd>/<kbd>←</kbd> previous</p>"
    )


def item_page(state: State, pos: int) -> str:
    """The page for the item at `pos`: what to judge, its current decision, the keys."""
    item: Item = state.items[pos]
    body = sample_body(state, pos, item) if isinstance(item, SampleItem) else preference_body(state, pos, item)
    data = {
        "kind": state.kind,
        "api": f"/api/items/{item.id}/decision",
        "version": item.version,
        "self": f"/item/{pos}",
        "prev": f"/item/{pos - 1}" if pos > 0 else None,
        "next": f"/item/{pos + 1}" if pos + 1 < len(state.items) else "/summary",
    }
    title = "sample scoring" if state.kind == "sample" else "blind A/B preference"
    return layout(title, body, data)


def _rows(pairs: list[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs) + "</table>"


def _interval(summary: dict, key: str) -> str:
    if summary.get(key) is None:
        return "nothing decided yet"
    return f"{summary[key]:.3f} (95% interval {summary['ci_low']:.3f} – {summary['ci_high']:.3f})"


def summary_page(state: State, summary: dict) -> str:
    """Where the review stands: the estimate (sample) or the win rate (A/B), and a way back in."""
    if state.kind == "sample":
        rows = [
            ("scored", progress_text(state)),
            ("set", f"{summary['source']} ({summary['population']} records)"),
            ("passed", f"{summary['passed']} (kept, or scored {summary['min_score']} or more)"),
            ("kept / rejected", f"{summary['kept']} / {summary['rejected']}"),
            ("scores 1-5", " · ".join(f"{k}: {v}" for k, v in summary["scores"].items())),
            ("replies edited", summary["edited"]),
            ("estimated pass rate", _interval(summary, "pass_rate")),
            ("threshold", f"{summary['threshold']} (the interval's lower bound must reach it)"),
            (
                "verdict",
                (summary["verdict"] or "-")
                + ("" if summary["complete"] else f" (so far: {summary['undecided']} undecided)"),
            ),
        ]
        title = "sample scoring"
    else:
        rows = [
            ("judged", progress_text(state)),
            ("B wins / losses / ties", f"{summary['wins']} / {summary['losses']} / {summary['ties']}"),
            ("B's win rate (a tie counts half)", _interval(summary, "win_rate")),
            ("verdict", summary.get("verdict", "-")),
        ]
        title = "blind A/B preference"
    first = first_undecided(state)
    more = (
        f'<p><a id="continue" href="/item/{first}">continue with the first undecided item</a></p>'
        if first is not None
        else '<p id="complete">Every item is decided.</p>'
    )
    body = (
        f'<h2>Summary</h2><div id="notice" role="status" hidden></div>{_rows(rows)}{more}'
        '<p class="keys"><kbd>p</kbd>/<kbd>←</kbd> back to the last item</p>'
    )
    return layout(title, body, {"kind": state.kind, "prev": f"/item/{len(state.items) - 1}"})


def message_page(title: str, text: str, problems: list[str] | None = None) -> str:
    """An error page (forbidden, not found, invalid state): a title, what happened, the problems."""
    items = "".join(f"<li><pre>{escape(p)}</pre></li>" for p in problems or [])
    return layout(
        title,
        f'<h2 id="message-title">{escape(title)}</h2><p>{escape(text)}</p>' + (f"<ul>{items}</ul>" if items else ""),
    )
