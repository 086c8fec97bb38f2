"""General data mixed into a task's (`train.general_data`) with length-grouped batches: the batches of general rows
are spread evenly through a pass instead of coming in runs (`tunesmith.train.kinds`, `train.spread_general`)."""

from __future__ import annotations

import random

import torch


def _runs(order, general, batch):
    """The longest run of consecutive general batches, and the batches as sets of rows."""
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    longest = run = 0
    for b in batches:
        run = run + 1 if 2 * sum(general[i] for i in b) > len(b) else 0
        longest = max(longest, run)
    return longest, [frozenset(b) for b in batches]


def _general_records(n: int, words: int):
    """`n` general records (as `train.general_data` gives them), each reply `words` words long."""
    from tunesmith.data.records import Record

    return [
        Record(
            messages=[{"role": "user", "content": f"tell me {i}"}, {"role": "assistant", "content": f"{i} " * words}],
            source="g.jsonl",
            line=i + 1,
            provenance={"general": True},
        )
        for i in range(n)
    ]


def test_general_batches_are_spread_evenly_and_the_batches_kept():
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from tunesmith.train.kinds import spread_general

    rng = random.Random(0)
    # 10% general rows, longer than the task's (no system prompt, longer replies), as on Banking77
    lengths = [rng.randint(50, 90) for _ in range(903)] + [rng.randint(95, 160) for _ in range(100)]
    general = [False] * 903 + [True] * 100
    torch.manual_seed(0)
    order = get_length_grouped_indices(lengths, 8)
    before, batches = _runs(order, general, 8)
    assert before >= 4  # length grouping: a run of general batches at the start of each mega-batch of 50
    spread = spread_general(order, general, 8)
    after, spread_batches = _runs(spread, general, 8)
    assert after == 1 and sorted(spread) == list(range(1003))  # every row once, never two general batches in a row
    assert spread[:8] == order[:8] and spread[-3:] == order[-3:]  # first and partial last stay
    assert sorted(spread_batches, key=min) == sorted(batches, key=min)  # the same batches, only reordered
    positions = [i for i, b in enumerate(spread_batches[1:]) if 2 * sum(general[r] for r in b) > len(b)]
    gaps = [b - a for a, b in zip(positions, positions[1:])]
    assert max(gaps) - min(gaps) <= 1  # after the first batch (the longest row's), one general batch every ~10
    assert spread_general(order, [False] * 1003, 8) == order  # nothing to spread: the order as it was


def test_the_trainer_spreads_general_batches_unless_switched_off(tmp_path, tiny_model_dir):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from conftest import routing_records, train_config
    from tunesmith.models import resolve_model
    from tunesmith.train.kinds import SpreadGeneral, spread_general
    from tunesmith.train.sft import build_trainer

    general = _general_records(8, words=40)
    ref = resolve_model(str(tiny_model_dir))
    records = routing_records(24) + general
    mixed = {"general_data": ["builtin:self"], "general_share": 0.25}  # (the records above stand for its replies)
    trainer, *_ = build_trainer(train_config(**mixed), ref, records, tmp_path / "a")
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, SpreadGeneral) and isinstance(sampler.sampler, LengthGroupedSampler)
    flags = trainer.train_dataset["general"]
    torch.manual_seed(1)
    grouped = list(sampler.sampler)
    torch.manual_seed(1)
    assert list(sampler) == spread_general(grouped, flags, 4) != grouped  # the general batches moved
    off = [train_config(**mixed, spread_general=False), train_config(**mixed, batching="random"), train_config()]
    for cfg in off:  # switched off, another batching, no general data configured: the sampler as it was
        trainer, *_ = build_trainer(cfg, ref, records, tmp_path / "b")
        assert not isinstance(trainer._get_train_sampler(), SpreadGeneral)
        assert not any(c.__name__ == "SpreadGeneralTrainer" for c in type(trainer).__mro__)


def test_the_switch_is_keyed_only_where_it_changes_the_order():
    """Runs cached before `train.spread_general` trained as it does switched off: without general data (or with
    other batching) it is not in the train key at all; with general data and grouped batches, on, it is."""
    from tunesmith.config import Config
    from tunesmith.pipeline.training import train_settings

    plain = Config()
    assert "spread_general" not in train_settings(plain, flat=True)["train"]
    mixed, old = Config(), Config()
    for cfg in (mixed, old):
        cfg.train.general_data, cfg.train.general_share = ["builtin:self"], 0.1
    old.train.spread_general = False
    assert train_settings(mixed, flat=True)["train"]["spread_general"] is True
    assert "spread_general" not in train_settings(old, flat=True)["train"]
    mixed.train.batching = "random"
    assert "spread_general" not in train_settings(mixed, flat=True)["train"]


def test_general_kl_trains_the_general_rows_towards_the_bases_distribution(tmp_path, tiny_model_dir):
    """`train.general_kl`: a general row's token loss is the weighted KL divergence from the base's next-token
    distribution (the adapter off), not cross-entropy on its sampled reply; the task's rows keep cross-entropy."""
    import torch.nn.functional as F

    from conftest import routing_records, train_config
    from tunesmith.models import resolve_model
    from tunesmith.train.kinds import KIND_COLUMN
    from tunesmith.train.sft import build_trainer

    general = _general_records(4, words=12)
    ref = resolve_model(str(tiny_model_dir))
    cfg = train_config(general_data=["builtin:self"], general_share=0.25, general_kl=2.0, precision="fp32")
    trainer, *_ = build_trainer(cfg, ref, routing_records(4) + general, tmp_path / "a")
    model = trainer.model
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(8)])
    flags = batch[KIND_COLUMN].clone()
    assert flags.tolist() == [False] * 4 + [True] * 4
    model.train()
    # a fresh adapter (B = 0) is the base: the general rows add nothing, the task's rows their cross-entropy
    with torch.no_grad():
        fresh = trainer.compute_loss(model, dict(batch))
        with model.disable_adapter():
            plain = model(**{k: v for k, v in batch.items() if k != KIND_COLUMN})
    task_tokens = (batch["labels"][:4, 1:] != -100).sum()
    all_tokens = (batch["labels"][:, 1:] != -100).sum()
    task_ce = F.cross_entropy(
        plain.logits[:4, :-1].flatten(0, 1).float(), batch["labels"][:4, 1:].flatten(), reduction="sum"
    )
    assert torch.allclose(fresh, task_ce / all_tokens, rtol=1e-4) and task_tokens < all_tokens
    # moved away from the base, a general row's loss is 2 x KL(base || model) over its labeled positions
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
        moved = trainer.compute_loss(model, {k: v for k, v in batch.items()})
        tuned = model(**{k: v for k, v in batch.items() if k != KIND_COLUMN}).logits.float()
        with model.disable_adapter():
            base = model(**{k: v for k, v in batch.items() if k != KIND_COLUMN}).logits.float()
    keep = batch["labels"][:, 1:] != -100
    kl = (F.softmax(base[:, :-1], -1) * (F.log_softmax(base[:, :-1], -1) - F.log_softmax(tuned[:, :-1], -1))).sum(-1)
    ce = F.cross_entropy(tuned[:, :-1].transpose(1, 2), batch["labels"][:, 1:], reduction="none", ignore_index=-100)
    expected = (ce[:4][keep[:4]].sum() + 2.0 * kl[4:][keep[4:]].sum()) / all_tokens
    assert kl[4:][keep[4:]].mean() > 1e-3 and torch.allclose(moved, expected, rtol=1e-3)


def test_general_kl_acts_only_where_its_base_and_rows_exist_and_says_why_not():
    """`train.general_kl` needs SFT with an adapter (the base: the adapter off), general data, whole-row batches and
    one process; elsewhere the run falls back to cross-entropy on the general replies and names the reason."""
    from conftest import train_config
    from tunesmith.train.kinds import general_kl, general_kl_skipped

    mixed = {"general_data": ["builtin:self"], "general_share": 0.1, "general_kl": 1.5}
    assert general_kl_skipped(train_config(**mixed)) is None and general_kl(train_config(**mixed)) == 1.5
    assert general_kl(train_config(**mixed, method="qlora")) == 1.5
    assert general_kl_skipped(train_config(**{**mixed, "general_kl": 0.0})) is None  # off: nothing to explain
    cases = {
        "method full": {"method": "full"},
        "objective dpo": {"objective": "dpo"},
        "batching packed": {"batching": "packed"},
        "one training process": {"nproc": 2},
        "no general data": {"general_share": 0.0},
    }
    for why, change in cases.items():
        cfg = train_config(**{**mixed, **change})
        assert why in general_kl_skipped(cfg) and general_kl(cfg) == 0.0, why
