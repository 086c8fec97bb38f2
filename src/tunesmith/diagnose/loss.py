"""The training loss curve (metrics.jsonl): NaN, spikes, a flat curve, held-out loss rising; and LoRA rank advice.

    curve, findings = check_loss(metrics_rows, train_result)
    check_rank(settings, train_result, rank_peers(train_dir))
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from tunesmith.diagnose.evidence import ERROR, OK, WARNING, finding, finite

SPIKE_WINDOW = 5  # a logged loss is compared with the median of the previous this-many
SPIKE_FACTOR = 1.5  # a spike: above this multiple of that median ...
SPIKE_MIN_RISE = 0.3  # ... and at least this much higher in absolute terms (nats), so noise near zero is no spike
FLAT_MIN_POINTS = 5  # a curve needs this many logged points (after warmup) to be called flat
FLAT_MAX_DROP = 0.01  # a curve that falls by less than 1% from its first fifth to its last fifth is flat
ZERO_GRAD = 1e-12  # a gradient norm at or below this is zero: nothing trains
EVAL_RISE = 0.05  # the held-out loss ending 5% above its best is rising (overfitting)
RANK_ENOUGH = 16  # the guide: "rank 8 or 16 is almost always enough"
RANK_MIN_GAIN = 0.02  # a higher rank must lower the held-out loss by 2% over a rank-16 run to earn its cost

NAN_REMEDY = ("Lower train.lr, use fp32 (train.precision: fp32), or look for an extreme example in the data; a re-run "
              "resumes from the last good checkpoint.")
SPIKE_REMEDY = ("Lower train.lr or lengthen the warmup (train.warmup_ratio); look at the examples of that step for an "
                "extreme or malformed record.")
FLAT_REMEDY = ("Check that the adapter is applied (trainable parameters above 0; train.target_modules matching the "
               "model's layer names) and raise train.lr; a curve that does not fall learns nothing.")
EVAL_REMEDY = ("Overfitting: train fewer epochs (one is almost always enough for LoRA) or stop earlier "
               "(train.max_steps), lower the learning rate, and add varied data.")
RANK_REMEDY = ("Rank 8 or 16 is almost always enough; rank 64 or 128 rarely helps and burns GPU time. Train with "
               "train.lora_r=16 (or 8) and keep it unless it is clearly worse; if quality is insufficient, the problem "
               "is usually the data, not the rank.")


def loss_curve(rows: list[dict]) -> dict[str, Any]:
    """The logged points of metrics.jsonl: training loss, learning rate and gradient norm per step, and the held-out
    loss per step (the last log of a step wins). Values stay raw floats here (NaN included)."""
    train: dict[int, dict] = {}
    held: dict[int, float] = {}
    for r in rows:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        if "loss" in r:
            train[step] = r
        if "eval_loss" in r:
            held[step] = _float(r["eval_loss"])
    steps = sorted(train)
    return {"steps": steps, "train": [_float(train[s]["loss"]) for s in steps],
            "learning_rate": [_float(train[s].get("learning_rate")) for s in steps],
            "grad_norm": [_float(train[s].get("grad_norm")) for s in steps],
            "eval_steps": sorted(held), "eval": [held[s] for s in sorted(held)]}


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def nan_flag(curve: dict) -> dict | None:
    """Any NaN or infinite training loss, gradient norm or held-out loss: the run diverged."""
    bad = [s for s, x, g in zip(curve["steps"], curve["train"], curve["grad_norm"])
           if not math.isfinite(x) or (g == g and not math.isfinite(g))]  # a missing grad norm (NaN here) is fine
    bad_eval = [s for s, x in zip(curve["eval_steps"], curve["eval"]) if not math.isfinite(x)]
    if not bad and not bad_eval:
        return None
    return {"code": "loss_nan", "severity": ERROR, "steps": sorted(set(bad + bad_eval)),
            "detail": f"the loss is NaN or infinite from step {min(bad + bad_eval)}"}


def spike_flag(curve: dict) -> dict | None:
    """Logged losses well above the median of the few before them."""
    spikes = []
    points = [(s, x) for s, x in zip(curve["steps"], curve["train"]) if math.isfinite(x)]
    for i in range(SPIKE_WINDOW, len(points)):
        ref = statistics.median(x for _, x in points[i - SPIKE_WINDOW:i])
        step, x = points[i]
        if x > SPIKE_FACTOR * ref and x - ref >= SPIKE_MIN_RISE:
            spikes.append({"step": step, "loss": x, "before": ref})
    if not spikes:
        return None
    worst = max(spikes, key=lambda p: p["loss"] / p["before"] if p["before"] > 0 else math.inf)
    return {"code": "loss_spike", "severity": WARNING, "steps": [p["step"] for p in spikes], "spikes": spikes[:5],
            "detail": f"the loss jumped to {worst['loss']:.3f} at step {worst['step']} "
                      f"from about {worst['before']:.3f}"}


def flat_flag(curve: dict) -> dict | None:
    """A curve that does not fall (after warmup): the adapter is not applied, or the learning rate is too low."""
    points = [(s, x, lr, g) for s, x, lr, g in zip(curve["steps"], curve["train"], curve["learning_rate"],
                                                  curve["grad_norm"])
              if math.isfinite(x) and not (lr == 0.0)]  # warmup steps at lr 0 cannot move the loss
    if len(points) < FLAT_MIN_POINTS:
        return None
    k = max(1, len(points) // 5)
    first = sum(p[1] for p in points[:k]) / k
    last = sum(p[1] for p in points[-k:]) / k
    drop = (first - last) / first if first > 0 else 0.0
    grads = [p[3] for p in points if math.isfinite(p[3])]
    no_grad = bool(grads) and max(grads) <= ZERO_GRAD
    if drop >= FLAT_MAX_DROP and not no_grad:
        return None
    lrs = [p[2] for p in points if math.isfinite(p[2])]
    detail = (f"the loss went {first:.3f} -> {last:.3f} ({drop:+.1%}) over {len(points)} logged steps"
              + ("; the gradient norm is 0: nothing trains" if no_grad else ""))
    return {"code": "loss_flat", "severity": ERROR if no_grad else WARNING, "steps": [points[0][0], points[-1][0]],
            "first": first, "last": last, "drop": drop, "peak_lr": max(lrs) if lrs else None,
            "max_grad_norm": max(grads) if grads else None, "detail": detail}


def eval_rising_flag(curve: dict) -> dict | None:
    """The held-out loss ending well above its best (with the training loss still falling: overfitting)."""
    points = [(s, x) for s, x in zip(curve["eval_steps"], curve["eval"]) if math.isfinite(x)]
    if len(points) < 2:
        return None
    best_step, best = min(points, key=lambda p: p[1])
    last_step, last = points[-1]
    if best_step == last_step or last < best * (1 + EVAL_RISE):
        return None
    train_then = [x for s, x in zip(curve["steps"], curve["train"]) if math.isfinite(x) and s >= best_step]
    falling = len(train_then) >= 2 and train_then[-1] < train_then[0]
    return {"code": "eval_loss_rising", "severity": WARNING, "steps": [best_step, last_step], "best_step": best_step,
            "best": best, "last": last, "train_falling": falling,
            "detail": f"the held-out loss rose {best:.3f} -> {last:.3f} after step {best_step}"
                      + (" while the training loss kept falling" if falling else "")}


FLAG_TITLES = {"loss_nan": ("Training diverged (NaN loss)", NAN_REMEDY),
               "loss_spike": ("Loss spikes", SPIKE_REMEDY),
               "loss_flat": ("Flat loss curve: adapter not applied or learning rate too low", FLAT_REMEDY),
               "eval_loss_rising": ("Held-out loss rising: overfitting", EVAL_REMEDY)}


def check_loss(rows: list[dict], train_result: dict | None = None) -> tuple[dict[str, Any], list[dict]]:
    """(the curve for reports, JSON-safe; findings): one finding per flag, or one `loss_curve` ok finding."""
    curve = loss_curve(rows)
    flags = [f for f in (nan_flag(curve), spike_flag(curve), flat_flag(curve), eval_rising_flag(curve)) if f]
    result = train_result or {}
    facts = {k: result.get(k) for k in ("train_loss", "eval_loss", "trainable_params") if k in result}
    if "steps" in result:
        facts["total_steps"] = result["steps"]  # a flag's own `steps` are the steps it found
    findings = []
    for f in flags:
        title, remedy = FLAG_TITLES[f["code"]]
        evidence = {k: v for k, v in f.items() if k not in ("code", "severity", "detail")} | facts
        if f["code"] == "eval_loss_rising":
            remedy += f" The best held-out loss was at step {f['best_step']}."
        findings.append(finding(f["code"], f["severity"], f"{title}: {f['detail']}", _json_safe(evidence), remedy))
    if not flags:
        note = ("" if len(curve["eval_steps"]) >= 2 else
                "; set train.eval_steps for a held-out curve that shows overfitting")
        findings.append(finding("loss_curve", OK, f"Loss curve looks healthy ({len(curve['steps'])} logged steps)"
                                + note if curve["steps"] else "No loss curve (metrics.jsonl is missing or empty)",
                                _json_safe(facts)))
    out = {"steps": curve["steps"], "train": [finite(x) for x in curve["train"]],
           "learning_rate": [finite(x) for x in curve["learning_rate"]],
           "grad_norm": [finite(x) for x in curve["grad_norm"]],
           "eval_steps": curve["eval_steps"], "eval": [finite(x) for x in curve["eval"]],
           "flags": [_json_safe(f) for f in flags]}
    return out, findings


def _json_safe(value: Any) -> Any:
    """NaN and infinities as None, so result.json stays strict JSON a browser can parse."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def rank_peers(train_dir: Path) -> list[dict[str, Any]]:
    """Other finished train runs of the same split with the same method and a rank of at most RANK_ENOUGH, with
    their held-out loss: what a higher rank has to beat."""
    import yaml

    from tunesmith.runs import is_complete, read_result

    def meta(d: Path) -> tuple[dict, dict]:
        inputs = json.loads((d / "inputs.json").read_text())
        return inputs, (yaml.safe_load((d / "config.yaml").read_text()) or {}).get("train") or {}

    try:
        mine, settings = meta(train_dir)
    except (OSError, ValueError, yaml.YAMLError):
        return []
    out = []
    for d in sorted(train_dir.parent.glob("*-train-*")):
        if d == train_dir or not is_complete(d):
            continue
        try:
            inputs, other = meta(d)
            result = read_result(d)
        except (OSError, ValueError, yaml.YAMLError):
            continue
        same = inputs.get("inputs", {}).get("split") == mine.get("inputs", {}).get("split")
        if same and other.get("method") == settings.get("method") and other.get("lora_r", 10 ** 9) <= RANK_ENOUGH \
                and finite(result.get("eval_loss")) is not None:
            out.append({"run": d.name, "lora_r": other["lora_r"], "eval_loss": result["eval_loss"]})
    return out


def check_rank(settings: dict[str, Any], train_result: dict | None, peers: list[dict]) -> dict[str, Any]:
    """LoRA rank above 16: does it beat a rank-16 (or lower) run of the same data on held-out loss?"""
    method, r = settings.get("method"), settings.get("lora_r")
    evidence: dict[str, Any] = {"method": method, "lora_r": r, "rslora": settings.get("rslora")}
    if method == "full" or r is None:
        return finding("lora_rank", OK, "Full fine-tuning: no adapter rank", evidence)
    if r <= RANK_ENOUGH:
        return finding("lora_rank", OK, f"LoRA rank {r} (8-16 is almost always enough)", evidence)
    mine = finite((train_result or {}).get("eval_loss"))
    evidence.update({"eval_loss": mine, "peers": peers})
    if peers and mine is not None:
        best = min(peers, key=lambda p: p["eval_loss"])
        gain = (best["eval_loss"] - mine) / best["eval_loss"] if best["eval_loss"] > 0 else 0.0
        evidence.update({"best_peer": best["run"], "gain": gain})
        if gain >= RANK_MIN_GAIN:
            return finding("lora_rank", OK, f"Rank {r} lowers the held-out loss {gain:.1%} below rank "
                           f"{best['lora_r']} ({best['run']})", evidence)
        return finding("lora_rank", WARNING, f"Rank {r} gains {gain:+.1%} held-out loss over rank {best['lora_r']}: "
                       "no gain for the cost", evidence, RANK_REMEDY)
    remedy = RANK_REMEDY + ("" if settings.get("rslora") else " If you keep a high rank, turn on train.rslora so it "
                            "keeps learning.")
    return finding("lora_rank", WARNING, f"LoRA rank {r} is above {RANK_ENOUGH}, with no rank-{RANK_ENOUGH} run of "
                   "the same data to show a gain", evidence, remedy)
