"""Shared-prefix batches give the whole batch's hidden states, loss and gradients (fp32, within rounding), and step
aside where they cannot apply."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")


def _model(tiny_model_dir, lora: bool, attention: str = "eager"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # nonzero, so the adapter's gradients flow through the prefix too
                torch.nn.init.normal_(p, std=0.05)
    inner = model.get_base_model() if lora else model
    return model, inner.get_decoder(), inner.get_output_embeddings()


def _batch(vocab: int, shared: int = 12, rows: int = 16):
    """Right-padded rows that share `shared` tokens, then differ (different lengths), labels after the prefix."""
    g = torch.Generator().manual_seed(0)
    prefix = torch.randint(3, vocab, (shared,), generator=g)
    lengths = [shared + 5 + i for i in range(rows)]
    length = max(lengths)
    ids = torch.zeros(rows, length, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    labels = torch.full((rows, length), -100)
    for i, n in enumerate(lengths):
        row = torch.cat([prefix, torch.randint(3, vocab, (n - shared,), generator=g)])
        ids[i, :n], mask[i, :n] = row, 1
        labels[i, shared + 2 : n] = row[shared + 2 :]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss(hidden, head, labels):
    target = labels[:, 1:]
    keep = target != -100
    return torch.nn.functional.cross_entropy(head(hidden[:, :-1][keep]).float(), target[keep])


@pytest.mark.parametrize(
    "lora,attention,path",
    [(False, "eager", "packed"), (True, "eager", "packed"), (True, "sdpa", "packed"), (True, "eager", "cached")],
)
def test_same_hidden_loss_and_gradients(tiny_model_dir, monkeypatch, lora, attention, path):
    """One packed sequence (eager's additive mask, SDPA's boolean one) and the expanded cache alike."""
    from tunesmith.train import shared_prefix
    from tunesmith.train.shared_prefix import shared_prefix_hidden, shared_prefix_length

    taken = []
    for name in ("_packed_hidden", "_cached_hidden"):
        real = getattr(shared_prefix, name)
        monkeypatch.setattr(shared_prefix, name, lambda *a, _f=real, _n=name: taken.append(_n) or _f(*a))
    if path == "cached":
        monkeypatch.setattr(shared_prefix, "PACK_ATTENTION", 0)  # packing never pays: the cache path
    model, decoder, head = _model(tiny_model_dir, lora, attention)
    batch = _batch(head.weight.shape[0])
    assert shared_prefix_length(batch["input_ids"], batch["attention_mask"], batch["labels"]) == 12
    params = [p for p in model.parameters() if p.requires_grad]

    plain = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    loss_plain = _loss(plain.last_hidden_state, head, batch["labels"])
    grads_plain = torch.autograd.grad(loss_plain, params)

    hidden = shared_prefix_hidden(decoder, batch)
    assert taken == [f"_{path}_hidden"]
    assert hidden is not None and hidden.shape == plain.last_hidden_state.shape
    real = batch["attention_mask"].bool()
    assert torch.allclose(hidden[real], plain.last_hidden_state[real], atol=1e-5)
    loss_shared = _loss(hidden, head, batch["labels"])
    assert loss_shared.item() == pytest.approx(loss_plain.item(), rel=1e-5)
    grads_shared = torch.autograd.grad(loss_shared, params)
    for a, b in zip(grads_plain, grads_shared):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_steps_aside(tiny_model_dir):
    from tunesmith.train.shared_prefix import shared_prefix_hidden

    _, decoder, head = _model(tiny_model_dir, lora=False)
    batch = _batch(head.weight.shape[0])
    short = _batch(head.weight.shape[0], shared=4)
    assert shared_prefix_hidden(decoder, short) is None  # too short to be worth it
    small = {k: v[:3] for k, v in batch.items()}
    assert shared_prefix_hidden(decoder, small) is None  # a batch under MIN_ROWS
    four = {k: v[:4] for k, v in batch.items()}  # batch 4 packed: 1.32x the tokens/s of unshared on Banking77
    assert shared_prefix_hidden(decoder, four) is not None
    labeled = {**batch, "labels": batch["input_ids"].clone()}  # a label inside the prefix: nothing is shared
    assert shared_prefix_hidden(decoder, labeled) is None
    packed = {k: v for k, v in batch.items() if k != "attention_mask"}  # padding-free rows carry no mask
    assert shared_prefix_hidden(decoder, packed) is None


def test_one_packed_sequence_only_where_it_is_cheap_and_exact(tiny_model_dir):
    """Long rows (attention grows with the packed length squared), another attention kernel, positions not from
    rotary embeddings, a sliding window shorter than the sequence or layers that are not attention: the prefix goes
    through the cache instead."""
    from tunesmith.train.shared_prefix import PACK_ATTENTION, _packable

    _, decoder, _ = _model(tiny_model_dir, lora=False)
    config = decoder.config
    # Banking77's batch of 8: 31 shared tokens, rows of ~66 padded, 311 packed (2.8x the batch's scores)
    assert _packable(decoder, 311, 8 * 66 * 66)
    assert not _packable(decoder, 8 * 300, 8 * 310 * 310)  # 8 support replies of ~300 tokens: 7.5x
    assert PACK_ATTENTION * 8 * 66 * 66 < 8 * 300 * 8 * 300
    config.sliding_window = 128
    assert not _packable(decoder, 311, 8 * 66 * 66)
    config.sliding_window = None
    config.layer_types = ["full_attention", "linear_attention"]
    assert not _packable(decoder, 311, 8 * 66 * 66)
    config.layer_types = None
    rope, config.rope_parameters = config.rope_parameters, None  # positions not from rotary embeddings
    assert not _packable(decoder, 311, 8 * 66 * 66)
    config.rope_parameters = rope
    config._attn_implementation = "flash_attention_2"
    assert not _packable(decoder, 311, 8 * 66 * 66)


def test_the_cpu_trainer_decodes_the_shared_system_prompt_once_a_batch(tmp_path, tiny_model_dir, monkeypatch):
    """Training steps and the validation loss both take the shared-prefix path (the rows share a system prompt)."""
    from conftest import routing_records, train_config
    from tunesmith.models import resolve_model
    from tunesmith.train import shared_prefix
    from tunesmith.train.sft import train_sft

    used = {"train": 0, "eval": 0}
    real = shared_prefix.shared_prefix_hidden

    def spy(decoder, inputs):
        hidden = real(decoder, inputs)
        if hidden is not None:
            used["train" if decoder.training else "eval"] += 1
        return hidden

    monkeypatch.setattr(shared_prefix, "shared_prefix_hidden", spy)
    cfg = train_config(eval_steps=1, batch_size=16)
    result = train_sft(cfg, resolve_model(str(tiny_model_dir)), routing_records(32), tmp_path, None)
    assert used["train"] == result.steps == 2
    assert used["eval"] == 0  # no validation records: no validation loss
    used["train"] = 0
    from tunesmith.train.sft import build_trainer

    trainer, *_ = build_trainer(
        cfg, resolve_model(str(tiny_model_dir)), routing_records(32), tmp_path / "v", routing_records(20)
    )
    metrics = trainer.evaluate()
    assert used["eval"] >= 1 and math.isfinite(metrics["eval_loss"])


def test_a_recipe_that_leaves_the_switch_alone_keeps_its_cache_key():
    """`train.shared_prefix` came after runs were cached: at its default it is not in the train key (old runs are
    reused); switched off it is (batches of 16+ are then not grouped by system prompt: another run)."""
    from tunesmith.config import Config
    from tunesmith.pipeline.training import train_settings

    on, off = Config(), Config()
    off.train.shared_prefix = False
    assert "shared_prefix" not in train_settings(on, flat=True)["train"]
    assert train_settings(off, flat=True)["train"]["shared_prefix"] is False
    assert train_settings(on, flat=True) != train_settings(off, flat=True)


def test_rows_of_one_system_prompt_are_batched_together():
    """General rows (another system prompt) mixed into a task's: the sampler's batches keep them apart, so batches
    keep a shared prefix; at most one batch of each mega-batch mixes the two."""
    import random

    from transformers.trainer_pt_utils import LengthGroupedSampler

    from tunesmith.train.shared_prefix import GROUP_TOKENS, grouped_lengths

    rng = random.Random(0)
    task = [[1] * GROUP_TOKENS + [rng.randint(5, 90) for _ in range(rng.randint(3, 30))] for _ in range(96)]
    general = [[2] * GROUP_TOKENS + [rng.randint(5, 90) for _ in range(rng.randint(3, 30))] for _ in range(32)]
    rows = task + general
    rng.shuffle(rows)
    assert grouped_lengths(task) is None  # one group: plain lengths do
    lengths = grouped_lengths(rows)
    torch.manual_seed(0)
    order = list(LengthGroupedSampler(4, lengths=lengths))
    assert sorted(order) == list(range(len(rows)))  # every row once
    batches = [order[i : i + 4] for i in range(0, len(order), 4)]
    pure = [len({rows[i][0] for i in b}) == 1 for b in batches]
    assert sum(pure) >= len(batches) - 4  # 4 mega-batches of 32 rows: one mixed batch each at most
    for b in batches:  # within a group, still sorted by length: a batch pads little
        if len({rows[i][0] for i in b}) == 1:
            assert [len(rows[i]) for i in b] == sorted((len(rows[i]) for i in b), reverse=True)


def test_the_cpu_trainer_samples_by_prefix_group(tmp_path, tiny_model_dir):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from conftest import routing_records, train_config
    from tunesmith.data.records import Record
    from tunesmith.models import resolve_model
    from tunesmith.train.sft import build_trainer

    general = [
        Record(
            messages=[{"role": "user", "content": f"say {i}"}, {"role": "assistant", "content": f"{i}"}],
            source="g.jsonl",
            line=i + 1,
            provenance={"general": True},
        )
        for i in range(6)
    ]
    ref = resolve_model(str(tiny_model_dir))
    trainer, *_ = build_trainer(train_config(batch_size=16), ref, routing_records(12) + general, tmp_path / "a")
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler) and max(sampler.lengths) > 1 << 20  # two groups: ranked
    for off in (train_config(batch_size=16, shared_prefix=False), train_config(batch_size=3)):
        trainer, *_ = build_trainer(off, ref, routing_records(12) + general, tmp_path / "b")
        assert max(trainer._get_train_sampler().lengths) < 1 << 20  # plain lengths: switched off, or batch < 4


def test_prompt_loss_neftune_and_loraplus_are_keyed_only_when_on():
    """`train.prompt_loss`, `neftune_alpha` and `loraplus_lr_ratio` came after runs were cached: off (the default)
    none is keyed."""
    from tunesmith.config import Config
    from tunesmith.pipeline.training import train_settings

    off, on = Config(), Config()
    on.train.prompt_loss = True
    assert "prompt_loss" not in train_settings(off, flat=True)["train"]
    assert train_settings(on, flat=True)["train"]["prompt_loss"] is True
    off.train.neftune_alpha = 0.0
    on.train.neftune_alpha = 5.0
    assert "neftune_alpha" not in train_settings(off, flat=True)["train"]
    assert train_settings(on, flat=True)["train"]["neftune_alpha"] == 5.0
    on.train.loraplus_lr_ratio = 16.0
    assert "loraplus_lr_ratio" not in train_settings(off, flat=True)["train"]
    assert train_settings(on, flat=True)["train"]["loraplus_lr_ratio"] == 16.0


@pytest.mark.parametrize("family", ["qwen2", "gemma2", "phi3"])
def test_other_families_pack_to_the_same_loss(family, monkeypatch):
    """The packed sequence on decoders other than the tiny Llama's: Qwen2, Gemma2 (sliding-window layers beside
    full ones, soft-capped scores) and Phi3, random and tiny, fp32."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunesmith.train import shared_prefix

    taken = []
    real = shared_prefix._packed_hidden
    monkeypatch.setattr(shared_prefix, "_packed_hidden", lambda *a: taken.append(1) or real(*a))
    extra = {"head_dim": 8, "sliding_window": 512} if family == "gemma2" else {}
    config = AutoConfig.for_model(
        family,
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **extra,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    batch = _batch(96)
    plain = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    hidden = shared_prefix.shared_prefix_hidden(decoder, batch)
    assert taken == [1]
    real_tokens = batch["attention_mask"].bool()
    assert torch.allclose(hidden[real_tokens], plain.last_hidden_state[real_tokens], atol=1e-5)
    assert _loss(hidden, head, batch["labels"]).item() == pytest.approx(
        _loss(plain.last_hidden_state, head, batch["labels"]).item(), rel=1e-5
    )
