"""Structured (constrained) decoding libraries side by side, through transformers' `generate`, on the built-in model.

    .venv/bin/python benchmarks/structured_decoding.py [--prompts 64] [--batch-size 16] [--max-new-tokens 40]
        [--libraries tunesmith xgrammar llguidance outlines lm-format-enforcer] [--unbatched-check 4]

(About 6 minutes on a 2-core CPU with all five.)
A JSON routing task: 64 customer messages of different lengths (so batches are left-padded), a system prompt
naming 30 intents, and two schemas: `enum` (`{"intent": <one of 30>}`, additionalProperties false) and
`enum+text` (the same plus a free `reason` string). Every library constrains the same greedy, left-padded batches
of SmolLM2-135M-Instruct (the project's precision, end-of-turn stop) with its JSON-Schema grammar, and each row is
reported against free (unconstrained) decoding:

- `setup s`: one-time work per tokenizer (vocabulary tables); `compile s`: the schema's grammar, once per schema;
- `ms/step`: generate's wall time per decoding step (prefill included, so short constrained replies pay a larger
  share of it); `mask ms/step`: time spent inside the library's processor per step (the overhead itself);
  `overhead`: mask ms/step as a share of free decoding's ms/step; `ratio`: ms/step against free decoding (noisy
  on a shared machine);
- every library gets the same whitespace policy as tunesmith (at most 8 blanks between JSON tokens; their defaults
  differ: unbounded for xgrammar and llguidance, one optional space for outlines);
- `valid`: replies that parse and validate against the schema; `stopped`: replies that ended with the
  end-of-turn token; `tokens`: reply tokens generated; `same`: of the first N prompts, how many give the same
  reply alone (batch of 1, no padding) as in the left-padded batch, which shows a processor keeps rows apart
  (in bf16, padding alone can flip a near-tie: the free row shows that floor).

xgrammar and llguidance have no transformers processor of their own that handles a padded batch, so both run
under the same small bitmask processor here (their matchers fill the masks; one torch applier masks the logits).
llguidance's matcher stops by itself once the grammar is complete, before the EOS token: it must still be asked
for a mask then (which allows only EOS), or the row runs on unconstrained.
A library that is not installed is skipped with a note (xgrammar is a tunesmith dependency; `pip install
llguidance outlines lm-format-enforcer` to measure the others too). `tunesmith` is the processor tunesmith ships
(`tunesmith.generate.decoding.logits_processor`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

INTENTS = [
    "cancel_order",
    "track_order",
    "change_address",
    "refund_request",
    "payment_failed",
    "update_card",
    "invoice_copy",
    "password_reset",
    "account_locked",
    "delete_account",
    "change_email",
    "upgrade_plan",
    "downgrade_plan",
    "cancel_subscription",
    "shipping_delay",
    "damaged_item",
    "wrong_item",
    "missing_item",
    "return_item",
    "exchange_item",
    "product_question",
    "stock_availability",
    "price_match",
    "discount_code",
    "gift_card",
    "warranty_claim",
    "technical_issue",
    "app_crash",
    "complaint",
    "other",
]
PHRASES = [
    "please cancel the order I placed yesterday",
    "where is my parcel right now?",
    "I moved, ship it to my new flat",
    "I want my money back for the blender",
    "my payment keeps getting declined",
    "my card expired, how do I add the new one",
    "can you send me a copy of the March invoice",
    "I forgot my password",
    "my account is locked after three tries",
    "delete my account and all my data",
    "I need to change the email on file",
    "I'd like the premium plan",
    "switch me to the cheaper plan",
    "stop my monthly subscription",
    "the delivery is a week late",
    "the box arrived crushed and the glass is broken",
    "you sent me a blue one, I ordered red",
    "one of the three items is missing",
    "how do I send this back",
    "can I swap it for a larger size",
    "is this kettle dishwasher safe?",
    "when will the black one be back in stock",
    "it's cheaper at the other shop, can you match it",
    "my discount code does not work",
    "can I pay with a gift card",
    "it stopped working after two months, warranty?",
    "the website shows an error 500",
    "the app crashes when I open it",
    "your service is terrible",
    "hello",
]
OPENERS = [
    "",
    "Hi, ",
    "Hello team, quick question: ",
    "Good morning. I have been a loyal customer for many years and I never had to write before, but ",
    "hey ",
]
SYSTEM = (
    "Route the customer's message to one intent: " + ", ".join(INTENTS) + ". Reply with JSON only: "
    '{"intent": "<intent>"}'
)
SCHEMAS = {
    "enum": {
        "type": "object",
        "properties": {"intent": {"enum": INTENTS}},
        "required": ["intent"],
        "additionalProperties": False,
    },
    "enum+text": {
        "type": "object",
        "properties": {"intent": {"enum": INTENTS}, "reason": {"type": "string"}},
        "required": ["intent", "reason"],
        "additionalProperties": False,
    },
}
BLANKS = 8  # every library gets tunesmith's whitespace policy: at most this many blanks between JSON tokens
SYSTEM_WITH_REASON = SYSTEM[: -len('"<intent>"}')] + '"<intent>", "reason": "<a few words>"}'


@dataclass
class Library:
    """How one library constrains `generate`: `setup(tok, vocab)` once, `compile(state, schema)` once per schema,
    `kwargs(compiled, batch)` per batch (fresh per-row state), returning extra `generate` keyword arguments."""

    name: str
    module: str
    setup: Callable
    compile: Callable
    kwargs: Callable
    note: str = ""
    timer: list = field(default_factory=lambda: [0.0])  # seconds inside the processor, summed


def _apply_bitmask(scores, mask) -> None:
    """Set the logits of tokens whose bit is 0 in the packed int32 `mask` (32 tokens per int, LSB first) to -inf."""
    import torch

    bits = (mask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    allowed = bits.reshape(mask.shape[0], -1)[:, : scores.shape[1]].bool()
    scores.masked_fill_(~allowed.to(scores.device), float("-inf"))


def _timed(lib: Library, fn: Callable) -> Callable:
    def wrapped(*args):
        began = time.perf_counter()
        try:
            return fn(*args)
        finally:
            lib.timer[0] += time.perf_counter() - began

    return wrapped


class _BitmaskProcessor:
    """A `generate` logits processor around per-row matchers: each step, feed every live row its last token, fill
    the rows' bitmasks, mask the logits. Finished rows (or rows whose token was refused) are left alone."""

    def __init__(self, matchers: list, consume: Callable, fill: Callable, done: Callable, vocab: int) -> None:
        import torch

        self.matchers, self.consume, self.fill, self.done = matchers, consume, fill, done
        self.mask = torch.full((len(matchers), (vocab + 31) // 32), -1, dtype=torch.int32)
        self.first = True

    def __call__(self, input_ids, scores):
        if not self.first:
            for i, m in enumerate(self.matchers):
                if not self.done(m):
                    self.consume(m, int(input_ids[i, -1]))
        self.first = False
        self.mask.fill_(-1)
        live = [i for i, m in enumerate(self.matchers) if not self.done(m)]
        self.fill([self.matchers[i] for i in live], live, self.mask)
        _apply_bitmask(scores, self.mask)
        return scores


def xgrammar_library() -> Library:
    def setup(tok, vocab):
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab, stop_token_ids=[tok.eos_token_id])
        return xgr.GrammarCompiler(info), vocab

    def compile_(state, schema):
        return state[0].compile_json_schema(json.dumps(schema), any_whitespace=True, max_whitespace_cnt=BLANKS), state[
            1
        ]

    def kwargs(compiled, n):
        import xgrammar as xgr

        grammar, vocab = compiled
        matchers = [xgr.GrammarMatcher(grammar) for _ in range(n)]

        def fill(ms, rows, mask):
            for m, i in zip(ms, rows):
                m.fill_next_token_bitmask(mask, i)

        proc = _BitmaskProcessor(
            matchers, lambda m, t: m.accept_token(t) or m.is_terminated(), fill, lambda m: m.is_terminated(), vocab
        )
        return {"logits_processor": [_timed(lib, proc)]}

    lib = Library("xgrammar", "xgrammar", setup, compile_, kwargs)
    return lib


def llguidance_library() -> Library:
    def setup(tok, vocab):
        import llguidance
        import llguidance.hf

        return llguidance.hf.from_tokenizer(tok, n_vocab=vocab, eos_token=tok.eos_token_id), llguidance.LLExecutor()

    def compile_(state, schema):
        import llguidance

        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, overrides={"whitespace_pattern": f"[\\x20\\x0A\\x0D\\x09]{{0,{BLANKS}}}"}
        )
        proto = llguidance.LLMatcher(state[0], grammar)
        assert not proto.is_error(), proto.get_error()
        return proto, state

    def kwargs(compiled, n):
        import llguidance.torch as llt

        proto, (lltok, executor) = compiled
        matchers = [proto.deep_copy() for _ in range(n)]

        def fill(ms, rows, mask):
            if ms:
                llt.fill_next_token_bitmask_par(executor, list(zip(ms, rows)), mask)

        # a matcher whose grammar is complete stops by itself (before the EOS token): it is still filled, which
        # allows only EOS, and it may take that EOS; only a matcher in error is left alone
        proc = _BitmaskProcessor(
            matchers, lambda m, t: m.is_stopped() or m.consume_token(t), fill, lambda m: m.is_error(), lltok.vocab_size
        )
        return {"logits_processor": [_timed(lib, proc)]}

    lib = Library("llguidance", "llguidance", setup, compile_, kwargs)
    return lib


def outlines_library() -> Library:
    def setup(tok, vocab):
        import outlines
        from outlines.backends.outlines_core import OutlinesCoreBackend

        return OutlinesCoreBackend(outlines.from_transformers(_MODEL[0], tok))

    def compile_(backend, schema):
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        return Index(build_regex_from_schema(json.dumps(schema), f"[ \\n\\r\\t]{{0,{BLANKS}}}"), backend.vocabulary)

    def kwargs(index, n):
        from outlines.backends.outlines_core import OutlinesCoreLogitsProcessor

        return {"logits_processor": [_timed(lib, OutlinesCoreLogitsProcessor(index, "torch"))]}

    lib = Library("outlines", "outlines", setup, compile_, kwargs, note="outlines_core backend (its default)")
    return lib


def lmfe_library() -> Library:
    """lm-format-enforcer's own transformers integration imports `transformers.tokenization_utils`, gone in
    transformers 5; its TokenEnforcer is driven here through `prefix_allowed_tokens_fn`, as that integration does."""

    def setup(tok, vocab):
        from lmformatenforcer import TokenEnforcerTokenizerData

        zero, special = tok.encode("0")[-1], set(tok.all_special_ids)
        regular = []
        for i in range(vocab):
            if i in special:
                continue
            after_zero, alone = tok.decode([zero, i])[1:], tok.decode([i])
            regular.append((i, after_zero, len(after_zero) > len(alone)))
        return TokenEnforcerTokenizerData(
            regular, lambda ids: tok.decode(ids).rstrip("\ufffd"), tok.eos_token_id, False, vocab
        )

    def compile_(data, schema):
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser

        return data, JsonSchemaParser(schema, CharacterLevelParserConfig(max_consecutive_whitespaces=BLANKS))

    def kwargs(compiled, n):
        from lmformatenforcer import TokenEnforcer

        enforcer = TokenEnforcer(*compiled)

        def allowed(batch_id, sent):
            return enforcer.get_allowed_tokens(sent.tolist()).allowed_tokens

        return {"prefix_allowed_tokens_fn": _timed(lib, allowed)}

    lib = Library(
        "lm-format-enforcer",
        "lmformatenforcer",
        setup,
        compile_,
        kwargs,
        note="TokenEnforcer via prefix_allowed_tokens_fn (its transformers module fails on transformers 5)",
    )
    return lib


def tunesmith_library() -> Library:
    def setup(tok, vocab):
        from tunesmith.generate.decoding import Constraint, compiled_grammar

        compiled_grammar(tok, Constraint("choice", choices=("x",)))  # builds the tokenizer's tables, once
        return tok

    def compile_(tok, schema):
        from tunesmith.generate.decoding import Constraint, compiled_grammar

        constraint = Constraint("json_schema", schema)
        compiled_grammar(tok, constraint)  # compiled once here; cached for every batch after
        return tok, constraint

    def kwargs(state, n):
        from tunesmith.generate.decoding import logits_processor

        return {"logits_processor": [_timed(lib, logits_processor(state[0], state[1], n))]}

    lib = Library("tunesmith", "xgrammar", setup, compile_, kwargs, note="tunesmith.generate.decoding (xgrammar)")
    return lib


LIBRARIES = {
    "tunesmith": tunesmith_library,
    "xgrammar": xgrammar_library,
    "llguidance": llguidance_library,
    "outlines": outlines_library,
    "lm-format-enforcer": lmfe_library,
}
_MODEL: list = []  # outlines wraps the model object itself


def prompts_for(tok, n: int, system: str) -> list[str]:
    from tunesmith.chat import render_prompt

    out = []
    for i in range(n):
        text = OPENERS[i % len(OPENERS)] + PHRASES[(i * 7) % len(PHRASES)]
        out.append(render_prompt(tok, [{"role": "system", "content": system}, {"role": "user", "content": text}]))
    return out


def generate(
    model, tok, prompts: list[str], batch_size: int, max_new_tokens: int, precision: str, extra: Callable[[int], dict]
) -> tuple[list[str], list[int], int, float]:
    """Greedy left-padded batches, longest first; replies (to the end-of-turn token), their token counts, decoding
    steps and wall time."""
    import torch

    eot = tok.convert_tokens_to_ids(tok.eos_token)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    texts, counts = [""] * len(prompts), [0] * len(prompts)
    steps, wall = 0, 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs = extra(len(idx))
        began = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eot,
                pad_token_id=tok.pad_token_id,
                **kwargs,
            )
        wall += time.perf_counter() - began
        new = out[:, enc["input_ids"].shape[1] :]
        steps += new.shape[1]
        for row, i in enumerate(idx):
            ids = new[row].tolist()
            ids = ids[: ids.index(eot) + 1] if eot in ids else ids
            counts[i] = len(ids)
            texts[i] = tok.decode(ids, skip_special_tokens=False)
    return texts, counts, steps, wall


def valid(text: str, eot: str, schema: dict) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(text.removesuffix(eot)), schema)
        return True
    except (ValueError, jsonschema.ValidationError):
        return False


def same_alone(run: Callable, prompts: list[str], batched: list[str], extra: Callable, k: int) -> str:
    """How many of the first `k` prompts get the same reply alone (no padding) as in their padded batch."""
    if not k:
        return ""
    k = min(k, len(prompts))
    alone = [run([p], extra, 1)[0][0] for p in prompts[:k]]
    return f"{sum(a == b for a, b in zip(alone, batched[:k]))}/{k}"


@dataclass
class Contender:
    """Free decoding or one library on one schema, and what it produced."""

    name: str
    extra: Callable[[int], dict]
    lib: Library | None = None
    setup_s: float = 0.0
    compile_s: float = 0.0
    texts: dict[int, str] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    steps: int = 0
    wall: float = 0.0


def contenders(names: list[str], schema: dict, tok, vocab: int, notes: list[str]) -> list[Contender]:
    """Free decoding, then each installed library with its tokenizer tables built and the schema compiled."""
    out = [Contender("free (no constraint)", lambda n: {})]
    for name in names:
        lib = LIBRARIES[name]()
        if importlib.util.find_spec(lib.module) is None:
            notes.append(f"{name}: not installed, skipped (pip install {name})")
            continue
        began = time.perf_counter()
        state = lib.setup(tok, vocab)
        setup_s = time.perf_counter() - began
        began = time.perf_counter()
        compiled = lib.compile(state, schema)
        compile_s = time.perf_counter() - began
        out.append(
            Contender(name, lambda n, lib=lib, compiled=compiled: lib.kwargs(compiled, n), lib, setup_s, compile_s)
        )
        if lib.note:
            notes.append(f"{name}: {lib.note}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    parser.add_argument("--schemas", nargs="+", default=list(SCHEMAS), choices=list(SCHEMAS))
    parser.add_argument("--unbatched-check", type=int, default=4, help="prompts re-generated alone (0: skip)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    args = parser.parse_args()

    from tunesmith.models import load_model, load_tokenizer, resolve_model, resolve_precision

    ref = resolve_model("builtin:smollm2-135m-instruct")
    tok = load_tokenizer(ref)
    tok.padding_side = "left"
    model = load_model(ref).eval()
    _MODEL.append(model)
    precision = resolve_precision(args.precision)
    run = lambda prompts, extra, bs=args.batch_size: generate(
        model, tok, prompts, bs, args.max_new_tokens, precision, extra
    )
    run(prompts_for(tok, 2, SYSTEM), lambda n: {}, 2)  # warm-up

    rows, notes = [], []
    for schema_name in args.schemas:
        schema = SCHEMAS[schema_name]
        prompts = prompts_for(tok, args.prompts, SYSTEM if schema_name == "enum" else SYSTEM_WITH_REASON)
        field_ = contenders(
            args.libraries, schema, tok, model.config.vocab_size, notes if schema_name == args.schemas[0] else []
        )
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        # batch by batch, every contender in turn: a load spike from other work on the machine hits them all
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            for c in field_:
                texts, counts, steps, wall = run([prompts[i] for i in idx], c.extra, len(idx))
                c.texts.update(zip(idx, texts))
                c.counts.update(zip(idx, counts))
                c.steps, c.wall = c.steps + steps, c.wall + wall
        free_ms = field_[0].wall / field_[0].steps * 1000
        for c in field_:
            texts = [c.texts[i] for i in range(len(prompts))]
            ms = c.wall / c.steps * 1000
            mask_ms = c.lib.timer[0] / c.steps * 1000 if c.lib else 0.0  # before the unbatched check adds to it
            ok = sum(valid(t, tok.eos_token, schema) for t in texts)
            stopped = sum(t.endswith(tok.eos_token) for t in texts)
            same = same_alone(run, prompts, texts, c.extra, args.unbatched_check)
            setup, compiled = (f"{c.setup_s:.2f}", f"{c.compile_s:.3f}") if c.lib else ("", "")
            rows.append(
                (
                    schema_name,
                    c.name,
                    setup,
                    compiled,
                    ms,
                    mask_ms,
                    mask_ms / free_ms,
                    ms / free_ms,
                    ok,
                    stopped,
                    sum(c.counts.values()),
                    same,
                )
            )
            print(f"{schema_name} {c.name}: e.g. {texts[0]!r}", flush=True)

    n = args.prompts
    print(
        f"\n{n} prompts, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}, greedy, {precision}, "
        f"cpu, builtin:smollm2-135m-instruct"
    )
    print(
        f"{'schema':<10}{'library':<20}{'setup s':>8}{'compile s':>10}{'ms/step':>9}{'mask ms/step':>13}"
        f"{'overhead':>9}{'ratio':>7}{'valid':>8}{'stopped':>9}{'tokens':>8}{'same':>6}"
    )
    for schema_name, name, setup_s, compile_s, ms, mask_ms, overhead, ratio, ok, stopped, tokens, same in rows:
        print(
            f"{schema_name:<10}{name:<20}{setup_s:>8}{compile_s:>10}{ms:>9.1f}{mask_ms:>13.2f}{overhead:>8.1%}"
            f"{ratio:>6.2f}x{ok:>5}/{n}{stopped:>6}/{n}{tokens:>8}{same:>6}"
        )
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
