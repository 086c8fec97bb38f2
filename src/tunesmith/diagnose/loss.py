"""The training curves (metrics.jsonl): NaN, spikes, a flat curve, held-out loss rising, underfitting; and LoRA rank
advice.

    curve, findings = check_loss(metrics_rows, train_result, tuned_accuracy=0.23)
    check_rank(settings, train_result, rank_peers(train_dir))
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from tunesmith.config import flat_train
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
UNDERFIT_MIN_POINTS = 10  # the training loss needs this many logged points to say it was still falling at the end
UNDERFIT_STEEP = 0.10  # still falling: the last fifth's mean loss more than 10% below the fifth before it ...
# ... and by at least this much in absolute terms (nats a token): near zero a memorized training set's loss halves
# without the model learning more (Banking77, 3 passes: 0.034 -> 0.019 while validation had peaked)
UNDERFIT_MIN_FALL = 0.05
UNDERFIT_MIN_VAL_POINTS = 2  # the validation metric needs this many evaluations to say it was still improving ...
UNDERFIT_TWO_POINT_RISE = 0.05  # ... and with only two (one pass validated twice), a rise of 5% of the first value
LOW_ACCURACY = 0.5  # a tuned task accuracy below this, with a loss curve that moved, is underfitting too
LOWER_IS_BETTER_VAL = {"loss", "token_limit_rate", "hallucination_rate"}  # validation metrics where lower is better
KINDS = ("task", "general")  # the rows whose training loss a run with general data logs apart (loss_<kind>)

NAN_REMEDY = (
    "Lower train.lr, use fp32 (train.precision: fp32), or look for an extreme example in the data; a re-run "
    "resumes from the last good checkpoint."
)
SPIKE_REMEDY = (
    "Lower train.lr or lengthen the warmup (train.warmup_ratio); look at the examples of that step for an "
    "extreme or malformed record."
)
SPIKE_AFTER_GENERAL_REMEDY = (
    "The task's loss jumped right after batches of general rows (train.general_data), which pull the model off the "
    "task for a step or two. Where they come in runs (train.spread_general: false, or batching other than grouped), "
    "train.spread_general: true spreads them evenly through each pass; on Banking77 that smoothed the task's loss "
    "but moved neither test accuracy nor the general probe significantly (benchmarks/RESULTS.md). The general probe's "
    "gate says whether the forgetting matters."
)
FLAT_REMEDY = (
    "Check that the adapter is applied (trainable parameters above 0; train.lora.target_modules matching the "
    "model's layer names) and raise train.lr; a curve that does not fall learns nothing."
)
EVAL_REMEDY = (
    "Overfitting: train fewer epochs (one is almost always enough for LoRA) or stop earlier "
    "(train.max_steps), lower the learning rate, and add varied data."
)
UNDERFIT_REMEDY = (
    "Underfitting: train longer — more epochs (train.epochs, e.g. 3-5 on a few hundred examples, or "
    "`auto`) or a higher learning rate (train.lr); or let the budgeted search find the recipe on the "
    "validation set: `tunesmith tune PROJECT --budget 30m`."
)
RANK_REMEDY = (
    "Rank 8 or 16 is almost always enough; rank 64 or 128 rarely helps and burns GPU time. Train with "
    "train.lora.r=16 (or 8) and keep it unless it is clearly worse; if quality is insufficient, the problem "
    "is usually the data, not the rank."
)


def loss_curve(rows: list[dict]) -> dict[str, Any]:
    """The logged points of metrics.jsonl: training loss, learning rate and gradient norm per step, the held-out
    loss per step, and the validation metrics (`val_<metric>` keys) per step as `val_steps` and
    `val: {metric: [value per val step]}` (NaN where a step did not log that metric). The last log of a step wins;
    values stay raw floats here (NaN included). A run with general data mixed in also logs the loss of its task
    and general rows apart (`loss_task`, `loss_general`): `kinds: {kind: [value per step]}` (NaN where a step
    saw none of that kind), empty otherwise."""
    train: dict[int, dict] = {}
    held: dict[int, float] = {}
    val: dict[int, dict[str, float]] = {}
    for r in rows:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        if "loss" in r:
            train[step] = r
        if "eval_loss" in r:
            held[step] = _float(r["eval_loss"])
        logged = {k[4:]: _float(v) for k, v in r.items() if k.startswith("val_")}
        if logged:
            val.setdefault(step, {}).update(logged)
    steps = sorted(train)
    names = list(dict.fromkeys(k for s in sorted(val) for k in val[s]))
    return {
        "steps": steps,
        "train": [_float(train[s]["loss"]) for s in steps],
        "learning_rate": [_float(train[s].get("learning_rate")) for s in steps],
        "grad_norm": [_float(train[s].get("grad_norm")) for s in steps],
        "eval_steps": sorted(held),
        "eval": [held[s] for s in sorted(held)],
        "val_steps": sorted(val),
        "val": {k: [val[s].get(k, math.nan) for s in sorted(val)] for k in names},
        "kinds": {
            kind: [_float(train[s].get(f"loss_{kind}")) for s in steps]
            for kind in KINDS
            if any(f"loss_{kind}" in train[s] for s in steps)
        },
    }


def task_losses(curve: dict) -> list[float]:
    """The training loss of the task's own rows per step when the run logged it apart from its general rows',
    else the training loss: what a flat curve or a steep end is judged on."""
    return curve["kinds"].get("task") or curve["train"]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def nan_flag(curve: dict) -> dict | None:
    """Any NaN or infinite training loss, gradient norm or held-out loss: the run diverged."""
    bad = [
        s
        for s, x, g in zip(curve["steps"], curve["train"], curve["grad_norm"])
        if not math.isfinite(x) or (g == g and not math.isfinite(g))
    ]  # a missing grad norm (NaN here) is fine
    bad_eval = [s for s, x in zip(curve["eval_steps"], curve["eval"]) if not math.isfinite(x)]
    if not bad and not bad_eval:
        return None
    return {
        "code": "loss_nan",
        "severity": ERROR,
        "steps": sorted(set(bad + bad_eval)),
        "detail": f"the loss is NaN or infinite from step {min(bad + bad_eval)}",
    }


def spike_flag(curve: dict) -> dict | None:
    """Logged losses well above the median of the few before them: of the task's rows when the run logged them
    apart from its general rows (a general batch's loss is no spike of the task's), else of the loss. The general
    rows' own loss is not judged so: logged from the one sparse batch of a window, it varies with that batch's
    prompts, and where it rises the task's steps moved the model off general replies, which is forgetting (the
    general probe measures it), not an unstable step."""
    spikes = _spikes(curve["steps"], task_losses(curve), "task" if curve["kinds"].get("task") else "")
    if not spikes:
        return None
    worst = max(spikes, key=lambda p: p["loss"] / p["before"] if p["before"] > 0 else math.inf)
    which = f"the {worst['kind']} loss" if worst.get("kind") else "the loss"
    general = _general_before(curve, worst["step"]) if worst.get("kind") == "task" else []
    return {
        "code": "loss_spike",
        "severity": WARNING,
        "steps": [p["step"] for p in spikes],
        "spikes": spikes[:5],
        **({"general_steps_before": general} if general else {}),
        "detail": f"{which} jumped to {worst['loss']:.3f} at step {worst['step']} from about {worst['before']:.3f}"
        + (f", right after general batches (logged at steps {', '.join(map(str, general))})" if general else ""),
    }


def _general_before(curve: dict, step: int) -> list[int]:
    """The logged steps holding general rows in the log window of `step` and the one before it."""
    steps, general = curve["steps"], curve["kinds"].get("general") or []
    i = steps.index(step)
    return [steps[j] for j in range(max(0, i - 1), i + 1) if j < len(general) and math.isfinite(general[j])]


def _spikes(steps: list[int], losses: list[float], kind: str) -> list[dict]:
    """The points of one loss series above SPIKE_FACTOR times the median of the SPIKE_WINDOW logged before them
    (and SPIKE_MIN_RISE above it); `kind` names the series in each point (none for the whole loss)."""
    points = [(s, x) for s, x in zip(steps, losses) if math.isfinite(x)]
    out = []
    for i in range(SPIKE_WINDOW, len(points)):
        ref = statistics.median(x for _, x in points[i - SPIKE_WINDOW : i])
        step, x = points[i]
        if x > SPIKE_FACTOR * ref and x - ref >= SPIKE_MIN_RISE:
            out.append({"step": step, "loss": x, "before": ref, **({"kind": kind} if kind else {})})
    return out


def flat_flag(curve: dict) -> dict | None:
    """A curve that does not fall (after warmup): the adapter is not applied, or the learning rate is too low."""
    points = [
        (s, x, lr, g)
        for s, x, lr, g in zip(curve["steps"], task_losses(curve), curve["learning_rate"], curve["grad_norm"])
        if math.isfinite(x) and lr != 0.0
    ]  # warmup steps at lr 0 cannot move the loss
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
    detail = f"the loss went {first:.3f} -> {last:.3f} ({drop:+.1%}) over {len(points)} logged steps" + (
        "; the gradient norm is 0: nothing trains" if no_grad else ""
    )
    return {
        "code": "loss_flat",
        "severity": ERROR if no_grad else WARNING,
        "steps": [points[0][0], points[-1][0]],
        "first": first,
        "last": last,
        "drop": drop,
        "peak_lr": max(lrs) if lrs else None,
        "max_grad_norm": max(grads) if grads else None,
        "detail": detail,
    }


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
    return {
        "code": "eval_loss_rising",
        "severity": WARNING,
        "steps": [best_step, last_step],
        "best_step": best_step,
        "best": best,
        "last": last,
        "train_falling": falling,
        "detail": f"the held-out loss rose {best:.3f} -> {last:.3f} after step {best_step}"
        + (" while the training loss kept falling" if falling else ""),
    }


def validation_points(curve: dict, selection: dict | None) -> tuple[str | None, list[tuple[int, float]]]:
    """(metric, [(step, value)]) of the validation metric that chose the checkpoint: the train result's
    `selection` curve when there is one, else the `val_<metric>` logs (the selection's metric, else
    task_accuracy, else the first metric logged that is not the loss)."""
    if selection and selection.get("curve"):
        points = [(int(p[0]), _float(p[1])) for p in selection["curve"] if isinstance(p, (list, tuple)) and len(p) == 2]
        return selection.get("metric"), [(s, x) for s, x in points if math.isfinite(x)]
    logged = curve.get("val") or {}
    wanted = (selection or {}).get("metric")
    metric = (
        wanted
        if wanted in logged
        else "task_accuracy"
        if "task_accuracy" in logged
        else next((k for k in logged if k != "loss"), None)
    )
    if metric is None:
        return None, []
    return metric, [(s, x) for s, x in zip(curve["val_steps"], logged[metric]) if math.isfinite(x)]


def still_improving(metric: str | None, points: list[tuple[int, float]], cases: int | None = None) -> dict | None:
    """The validation metric's best is its last evaluation and it rose (fell, for a loss) over the last third of
    the curve by more than the noise of a validation set of `cases` cases (`_noise`, as `peaked_early` reads a
    dip): training stopped while it was still learning."""
    if metric is None or len(points) < UNDERFIT_MIN_VAL_POINTS:
        return None
    sign = -1 if metric in LOWER_IS_BETTER_VAL else 1
    values = [sign * x for _, x in points]
    start = len(points) - 1 - max(1, len(points) // 3)
    if values[-1] < max(values) or not values[-1] - values[start] > _noise(metric, values[-1], cases):
        return None
    if len(points) == 2 and values[1] - values[0] < UNDERFIT_TWO_POINT_RISE * abs(values[0]):
        return None
    return {
        "metric": metric,
        "from_step": points[start][0],
        "from": points[start][1],
        "last_step": points[-1][0],
        "last": points[-1][1],
        "evaluations": len(points),
    }


def peaked_early(metric: str | None, points: list[tuple[int, float]], selection: dict | None) -> bool:
    """The validation metric (or the stopping rule) says the best point was before the end, by more than the
    validation set's noise: more training would overfit, not help."""
    if (selection or {}).get("stopped_early"):
        return True
    if metric is None or len(points) < UNDERFIT_MIN_VAL_POINTS:
        return False
    sign = -1 if metric in LOWER_IS_BETTER_VAL else 1
    values = [sign * x for _, x in points]
    return max(values) - values[-1] > _noise(metric, max(values), (selection or {}).get("cases"))


def _noise(metric: str, best: float, cases: int | None) -> float:
    """How far a validation metric may dip below its best by chance alone: one binomial standard error of a rate
    on `cases` validation cases (the example's 36: 7 right, then 5, is inside it). 0 for a loss, or when the run
    did not record its validation size (every dip counts, as before)."""
    if not cases or metric in LOWER_IS_BETTER_VAL or not 0.0 <= best <= 1.0:
        return 0.0
    return math.sqrt(best * (1.0 - best) / cases)


def steep_end(curve: dict) -> dict | None:
    """The training loss still falling steeply when training ended: its last fifth is more than 10% and
    UNDERFIT_MIN_FALL below the fifth before it."""
    points = [x for x, lr in zip(task_losses(curve), curve["learning_rate"]) if math.isfinite(x) and lr != 0.0]
    if len(points) < UNDERFIT_MIN_POINTS:
        return None
    k = len(points) // 5
    before = sum(points[-2 * k : -k]) / k
    last = sum(points[-k:]) / k
    drop = (before - last) / before if before > 0 else 0.0
    if drop <= UNDERFIT_STEEP or before - last < UNDERFIT_MIN_FALL:
        return None
    return {"before": before, "last": last, "drop": drop, "points": k}


def underfit_flag(curve: dict, selection: dict | None, tuned_accuracy: float | None, other: list[dict]) -> dict | None:
    """Training stopped before the model learned the task: the validation metric still improving at the last
    evaluation, the training loss still falling steeply at the end, or a low tuned task accuracy while the loss
    curve moved. Not raised when the run diverged, the curve is flat (its own finding), or the held-out loss or the
    validation metric already turned (overfitting, where more training hurts)."""
    codes = {f["code"] for f in other}
    if codes & {"loss_nan", "loss_flat"}:
        return None
    metric, points = validation_points(curve, selection)
    overfit = "eval_loss_rising" in codes or peaked_early(metric, points, selection)
    signs: dict[str, Any] = {}
    rising = still_improving(metric, points, (selection or {}).get("cases"))
    if rising:
        signs["validation_still_improving"] = rising
    steep = None if overfit else steep_end(curve)
    if steep:
        signs["train_loss_still_falling"] = steep
    moved = len([x for x in curve["train"] if math.isfinite(x)]) >= 2  # a curve, and not flat (checked above)
    if tuned_accuracy is not None and tuned_accuracy < LOW_ACCURACY and moved and not overfit:
        signs["low_task_accuracy"] = {"tuned_task_accuracy": tuned_accuracy, "below": LOW_ACCURACY}
    if not signs:
        return None
    return {
        "code": "underfitting",
        "severity": WARNING,
        "steps": curve["steps"][-1:],
        **signs,
        "detail": "; ".join(_underfit_detail(k, v) for k, v in signs.items()),
    }


def _underfit_detail(kind: str, v: dict) -> str:
    if kind == "validation_still_improving":
        return (
            f"the validation {v['metric']} was still improving at the last evaluation ({v['from']:.3f} at step "
            f"{v['from_step']} -> {v['last']:.3f} at step {v['last_step']}, its best)"
        )
    if kind == "train_loss_still_falling":
        return (
            f"the training loss was still falling steeply at the end ({v['before']:.3f} -> {v['last']:.3f}, "
            f"{v['drop']:.0%} lower over its last fifth)"
        )
    return f"the tuned task accuracy is {v['tuned_task_accuracy']:.3f}, below {v['below']:.1f}, while the loss moved"


FLAG_TITLES = {
    "loss_nan": ("Training diverged (NaN loss)", NAN_REMEDY),
    "loss_spike": ("Loss spikes", SPIKE_REMEDY),
    "loss_flat": ("Flat loss curve: adapter not applied or learning rate too low", FLAT_REMEDY),
    "eval_loss_rising": ("Held-out loss rising: overfitting", EVAL_REMEDY),
    "underfitting": ("Underfitting", UNDERFIT_REMEDY),
}


def check_loss(
    rows: list[dict], train_result: dict | None = None, tuned_accuracy: float | None = None
) -> tuple[dict[str, Any], list[dict]]:
    """(the curve for reports, JSON-safe; findings): one finding per flag, or one `loss_curve` ok finding.
    `train_result["selection"]` (the validation metric's curve) and `tuned_accuracy` (the tuned model's held-out
    task accuracy) feed the underfitting check."""
    curve = loss_curve(rows)
    flags = [f for f in (nan_flag(curve), spike_flag(curve), flat_flag(curve), eval_rising_flag(curve)) if f]
    result = train_result or {}
    selection = result.get("selection") if isinstance(result.get("selection"), dict) else None
    underfit = underfit_flag(curve, selection, tuned_accuracy, flags)
    flags += [underfit] if underfit else []
    facts = {k: result.get(k) for k in ("train_loss", "eval_loss", "trainable_params") if k in result}
    if "steps" in result:
        facts["total_steps"] = result["steps"]  # a flag's own `steps` are the steps it found
    findings = []
    for f in flags:
        title, remedy = FLAG_TITLES[f["code"]]
        evidence = {k: v for k, v in f.items() if k not in ("code", "severity", "detail")} | facts
        if f["code"] == "eval_loss_rising":
            remedy += f" The best held-out loss was at step {f['best_step']}."
        if f.get("general_steps_before"):
            remedy = SPIKE_AFTER_GENERAL_REMEDY
        findings.append(finding(f["code"], f["severity"], f"{title}: {f['detail']}", _json_safe(evidence), remedy))
    if not flags:
        note = (
            ""
            if len(curve["eval_steps"]) >= 2
            else "; set train.eval_steps for a held-out curve that shows overfitting"
        )
        findings.append(
            finding(
                "loss_curve",
                OK,
                f"Loss curve looks healthy ({len(curve['steps'])} logged steps)" + note
                if curve["steps"]
                else "No loss curve (metrics.jsonl is missing or empty)",
                _json_safe(facts),
            )
        )
    out = {
        "steps": curve["steps"],
        "train": [finite(x) for x in curve["train"]],
        "learning_rate": [finite(x) for x in curve["learning_rate"]],
        "grad_norm": [finite(x) for x in curve["grad_norm"]],
        "eval_steps": curve["eval_steps"],
        "eval": [finite(x) for x in curve["eval"]],
        "val_steps": curve["val_steps"],
        "val": {k: [finite(x) for x in v] for k, v in curve["val"].items()},
        "kinds": {k: [finite(x) for x in v] for k, v in curve["kinds"].items()},
        "flags": [_json_safe(f) for f in flags],
    }
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
    """Other finished train runs of the same split with the same method and loss mask (`prompt_loss`) and a rank
    of at most RANK_ENOUGH, with their held-out loss: what a higher rank has to beat."""
    import yaml

    from tunesmith.runs import is_complete, read_result

    def meta(d: Path) -> tuple[dict, dict]:
        inputs = json.loads((d / "inputs.json").read_text())
        return inputs, flat_train((yaml.safe_load((d / "config.yaml").read_text()) or {}).get("train") or {})

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
        if (
            same
            and other.get("method") == settings.get("method")
            and bool(other.get("prompt_loss")) == bool(settings.get("prompt_loss"))  # losses over the same tokens
            and other.get("lora_r", 10**9) <= RANK_ENOUGH
            and finite(result.get("eval_loss")) is not None
        ):
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
            return finding(
                "lora_rank",
                OK,
                f"Rank {r} lowers the held-out loss {gain:.1%} below rank {best['lora_r']} ({best['run']})",
                evidence,
            )
        return finding(
            "lora_rank",
            WARNING,
            f"Rank {r} gains {gain:+.1%} held-out loss over rank {best['lora_r']}: no gain for the cost",
            evidence,
            RANK_REMEDY,
        )
    remedy = RANK_REMEDY + (
        "" if settings.get("rslora") else " If you keep a high rank, turn on train.lora.rslora so it keeps learning."
    )
    return finding(
        "lora_rank",
        WARNING,
        f"LoRA rank {r} is above {RANK_ENOUGH}, with no rank-{RANK_ENOUGH} run of the same data to show a gain",
        evidence,
        remedy,
    )
