"""What was checked on the trained model: the diagnosis (findings, the label-mask preview, the loss verdict), the
export's parity with the checkpoint, and a blind A/B preference.
"""

from __future__ import annotations

from typing import Any

from tunesmith.report.frame import SEVERITY_ORDER, not_measured, section, severity_label
from tunesmith.report.markup import (
    Html,
    esc,
    generic,
    interval,
    join,
    kv,
    num,
    pass_badge,
    signed,
    table,
    tag,
    verdict_badge,
)


def diagnosis(d: Any) -> Html:
    """A diagnosis: findings (severity, code, title, evidence, remedy), a label-mask preview, the loss verdict,
    and anything else as key/value tables."""
    if not d:
        return section(
            "diagnosis", "Diagnosis", not_measured("no diagnosis", "`tunesmith diagnose` explains a failed gate")
        )
    if not isinstance(d, dict):
        return section("diagnosis", "Diagnosis", generic(d))
    parts = []
    counts = d.get("counts")
    if isinstance(counts, dict) and counts:
        parts.append(tag("p", ", ".join(f"{n} {k}" for k, n in counts.items()), cls="lead"))
    if "findings" in d:
        findings = d.get("findings") or []
        if isinstance(findings, list) and all(isinstance(f, dict) for f in findings):
            findings = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.get("severity"), 3))
            parts.append(
                join(finding_card(f) for f in findings) if findings else tag("p", "No problem found.", cls="note")
            )
        else:
            parts.append(generic(findings))
    if d.get("masking_preview"):
        parts.append(
            tag("h3", "What the loss trains on")
            + tag(
                "p",
                Html('<span class="trained">highlighted</span> tokens are trained; the rest is context.'),
                cls="note",
            )
            + masking(d["masking_preview"])
        )
    if d.get("loss"):
        parts.append(tag("h3", "Loss") + loss_summary(d["loss"]))
    rest = {k: v for k, v in d.items() if k not in ("counts", "findings", "masking_preview", "loss")}
    if rest:
        parts.append(tag("h3", "More") + generic(rest))
    return section("diagnosis", "Diagnosis", join(parts))


def finding_card(f: dict) -> Html:
    """One diagnosis finding: severity, code and title on a line, the remedy under it, the evidence folded."""
    sev = f.get("severity")
    head = tag(
        "div",
        severity_label(sev)
        + esc(" ")
        + tag("code", f.get("code", ""))
        + esc(" ")
        + tag("b", f.get("title") or f.get("message") or ""),
    )
    remedy = f.get("remedy") or f.get("hint")
    body = tag("p", tag("b", "Remedy: ") + generic(remedy), cls="remedy") if remedy else Html("")
    if f.get("evidence"):
        body += tag("details", tag("summary", "evidence") + generic(f["evidence"]))
    return tag("div", head + body, cls=f"finding {sev}" if sev in SEVERITY_ORDER else "finding")


def loss_summary(loss: Any) -> Html:
    """The diagnosis' loss part: its flags as a table, each logged series as its length and ends (the curve itself
    is the Training plot), anything else as it is."""
    if not isinstance(loss, dict):
        return generic(loss)
    pairs = []
    for k, v in loss.items():
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            pairs.append((k, f"{len(v)} points, {num(v[0], '.4g')} … {num(v[-1], '.4g')}"))
        elif k != "flags":
            pairs.append((k, generic(v, 1)))
    flags = loss.get("flags")
    out = kv(pairs) if pairs else Html("")
    if flags:
        out += tag("h4", "flags") + generic(flags)
    elif "flags" in loss:
        out += tag("p", "No flag raised on the loss curve.", cls="note")
    return out


def masking(previews: Any) -> Html:
    if not isinstance(previews, list):
        return generic(previews)
    out = []
    for p in previews:
        segs = p.get("segments") if isinstance(p, dict) else None
        if not isinstance(segs, list):
            out.append(generic(p))
            continue
        spans = join(
            tag("span", s.get("text", ""), cls="trained" if s.get("loss") else "context")
            for s in segs
            if isinstance(s, dict)
        )
        counts = (
            f" ({p['loss_tokens']} of {p['tokens']} tokens carry loss)"
            if p.get("tokens") is not None and p.get("loss_tokens") is not None
            else ""
        )
        body = tag("p", p["error"], cls="sev error") if p.get("error") else tag("pre", spans)
        out.append(tag("div", tag("div", f"{p.get('where', '')}{counts}", cls="case-id") + body, cls="mask"))
    return join(out)


def parity(reports: Any) -> Html:
    if not reports:
        return section(
            "parity",
            "Export parity",
            not_measured(
                "no exported model was compared with the checkpoint", "set export.formats (e.g. [merged, gguf])"
            ),
        )
    if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
        return section("parity", "Export parity", generic(reports))
    rows = []
    for r in reports:
        acc = r.get("task_accuracy") or {}
        rows.append(
            [
                r.get("kind"),
                r.get("runtime", "transformers"),
                r.get("n"),
                num(r.get("identical"), ".1%"),
                f"{num(acc.get('base'))} → {num(acc.get('tuned'))}" if acc else "-",
                f"{signed(acc.get('delta'))} [{interval(acc.get('ci_low'), acc.get('ci_high'))}]" if acc else "-",
                r.get("target"),
                pass_badge(r.get("passed")),
                r.get("cause") or "",
            ]
        )
    return section(
        "parity",
        "Export parity (held-out, against the checkpoint)",
        table(
            [
                "artifact",
                "runtime",
                "cases",
                "identical replies",
                "task accuracy (ckpt → export)",
                "delta [CI]",
                "target",
                "result",
                "likely cause",
            ],
            rows,
            numeric=["cases", "identical replies"],
        ),
    )


def preference(p: Any) -> Html:
    prefs = preference_results(p)
    if not prefs:
        return section(
            "preference",
            "Preference",
            not_measured("no blind A/B review", "`tunesmith review ab` for a person's preference"),
        )
    lines = [
        tag(
            "p",
            tag("b", f"{x.get('judge', 'human')}: ")
            + esc(preference_text(x))
            + esc(" ")
            + verdict_badge(x.get("verdict")),
            cls="lead",
        )
        for x in prefs
    ]
    return section("preference", "Preference", join(lines))


def preference_text(p: dict) -> str:
    """One line: who judged, B's wins/losses/ties against A, the win rate with its interval, the verdict."""
    judged = p.get("judged", (p.get("wins") or 0) + (p.get("losses") or 0) + (p.get("ties") or 0))
    text = (
        f"{judged} judged: {p.get('candidate', 'tuned')} wins {p.get('wins', '-')}, loses {p.get('losses', '-')}, "
        f"ties {p.get('ties', '-')} against {p.get('baseline', 'base')}"
    )
    if p.get("win_rate") is not None:
        text += (
            f"; win rate {num(p['win_rate'])} ({num(p.get('ci_low'))} .. {num(p.get('ci_high'))})"
            f", {p.get('verdict', '-')}"
        )
    if p.get("undecided"):
        text += f"; {p['undecided']} undecided"
    return text + unanswered_text(p)


def unanswered_text(p: dict) -> str:
    """The cases one model did not answer, counted without the judge (`tunesmith.eval.pairing.with_unanswered`)."""
    gone = p.get("unanswered") if isinstance(p.get("unanswered"), dict) else {}
    notes = (
        (gone.get("candidate"), f"unanswered by {p.get('candidate', 'tuned')}, counted as losses"),
        (gone.get("baseline"), f"unanswered by {p.get('baseline', 'base')}, counted as wins"),
        (gone.get("neither"), "unanswered by both, left out"),
    )
    return "".join(f"; {n} {what}" for n, what in notes if n)


def preference_results(p: Any) -> list[dict]:
    if isinstance(p, dict):
        return [p]
    return [x for x in p if isinstance(x, dict)] if isinstance(p, list) else []
