"""The GPU table: memory, rough bf16 training speed and hourly price of each GPU class, a price file merged over it
(`--prices FILE`), and finding a GPU by a part of its name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tunesmith.cost.flops import per_billion
from tunesmith.errors import Problem, TunesmithError


@dataclass(frozen=True)
class Gpu:
    """A GPU class: memory, rough bf16 training speed (tokens/s per billion parameters, full fine-tune) and the
    hourly price range to rent one (None: unknown)."""

    name: str
    memory_gib: float
    tokens_per_s_per_b: float
    hourly_usd: tuple[float, float] | None


# Peak dense bf16 tensor TFLOP/s from the vendors' datasheets (GeForce cards: with fp32 accumulation).
# Prices: the guide ("cloud GPU rates as of May 2026: RTX 4090 at roughly $0.55/hr, A100 at $0.76-$1.39/hr, H100 at
# $1.33/hr"); the cards it does not price carry rough community-cloud figures, marked "est." (override: --prices).
DEFAULT_GPUS: tuple[Gpu, ...] = (
    Gpu("RTX 3060", 12, per_billion(25.6), (0.05, 0.10)),  # est.; the guide's minimum card for a 7B QLoRA
    Gpu("RTX 4090", 24, per_billion(165.2), (0.55, 0.55)),  # guide
    Gpu("RTX A5000", 24, per_billion(111.1), (0.20, 0.40)),  # est.; the guide's other 16-24 GB "sweet spot" card
    Gpu("L40S", 48, per_billion(362.1), (0.80, 1.20)),  # est.
    Gpu("A100 40GB", 40, per_billion(312), (0.76, 1.39)),  # guide
    Gpu("A100 80GB", 80, per_billion(312), (0.76, 1.39)),  # guide (it prices "A100" without a memory size)
    Gpu("H100 80GB", 80, per_billion(989), (1.33, 1.33)),  # guide
    Gpu("H200", 141, per_billion(989), (2.00, 3.50)),  # est.
)


class GpuEntry(BaseModel):
    """One GPU of a price file; a GPU not in the table needs all three fields."""

    model_config = ConfigDict(extra="forbid")
    memory_gib: float | None = Field(None, gt=0, description="GPU memory in GiB.")
    tokens_per_s_per_b: float | None = Field(
        None, gt=0, description="bf16 training tokens/s per billion parameters (full fine-tune)."
    )
    hourly_usd: float | tuple[float, float] | None = Field(None, description="Hourly price: a number, or [low, high].")


class PriceFile(BaseModel):
    """`--prices FILE`: GPUs merged over the built-in table by name."""

    model_config = ConfigDict(extra="forbid")
    gpus: dict[str, GpuEntry] = Field(default_factory=dict, description="GPU name -> its fields.")


def gpus(prices: str | Path | None = None) -> dict[str, Gpu]:
    """The GPU table, with the entries of a price file (YAML or JSON) merged over it by name:

    gpus:
      RTX 4090: {hourly_usd: 0.39}                                # override one field
      My A6000: {memory_gib: 48, tokens_per_s_per_b: 5000, hourly_usd: [0.45, 0.80]}   # a new card: all three
    """
    table = {g.name: g for g in DEFAULT_GPUS}
    if prices is None:
        return table
    path = Path(prices)
    return _merge_prices(table, _read_price_file(path), path)


def _read_price_file(path: Path) -> PriceFile:
    """The price file parsed (JSON is YAML too) and checked against `PriceFile`, or a TunesmithError saying why not."""
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as exc:
        raise TunesmithError(
            "Cannot read the price file",
            [Problem(str(path), exc.strerror or str(exc), "pass an existing YAML or JSON file")],
        ) from None
    except yaml.YAMLError as exc:
        raise TunesmithError(
            "The price file is not YAML or JSON", [Problem(str(path), str(exc).splitlines()[0], "fix the syntax")]
        ) from None
    try:
        return PriceFile.model_validate(raw if raw is not None else {})
    except ValidationError as err:
        problems = [
            Problem(
                f"{path}: " + ".".join(str(p) for p in e["loc"]),
                e["msg"],
                "see `tunesmith cost --help` for the file's shape",
            )
            for e in err.errors()
        ]
        raise TunesmithError(f"Bad price file: {len(problems)} problem(s)", problems) from None


def _merge_prices(table: dict[str, Gpu], parsed: PriceFile, path: Path) -> dict[str, Gpu]:
    """`table` with each entry of the price file merged over the GPU of its name (or added as a new GPU); every
    problem of the file reported at once."""
    problems: list[Problem] = []
    for name, entry in parsed.gpus.items():
        merged = _merged_gpu(name, entry, table.get(name), path, list(table))
        if isinstance(merged, Gpu):
            table[name] = merged
        else:
            problems += merged
    if problems:
        raise TunesmithError(f"Bad price file: {len(problems)} problem(s)", problems)
    return table


def _merged_gpu(name: str, entry: GpuEntry, known: Gpu | None, path: Path, names: list[str]) -> Gpu | list[Problem]:
    """One price file entry over the known GPU of its name (its missing fields kept), or a new GPU when all three
    fields are given; else the entry's problems."""
    price = entry.hourly_usd
    if isinstance(price, (int, float)):
        price = (float(price), float(price))
    if price is not None and (price[0] < 0 or price[1] < price[0]):
        return [
            Problem(
                f"{path}: gpus.{name}.hourly_usd",
                f"{list(price)} is not a range low <= high, >= 0",
                "e.g. hourly_usd: [0.76, 1.39]",
            )
        ]
    if known is None:
        missing = [f for f in ("memory_gib", "tokens_per_s_per_b", "hourly_usd") if getattr(entry, f) is None]
        if missing:
            return [
                Problem(
                    f"{path}: gpus.{name}.{f}", "required for a GPU not in the table", f"known GPUs: {', '.join(names)}"
                )
                for f in missing
            ]
        return Gpu(name, entry.memory_gib, entry.tokens_per_s_per_b, price)
    return Gpu(
        name,
        entry.memory_gib or known.memory_gib,
        entry.tokens_per_s_per_b or known.tokens_per_s_per_b,
        price if price is not None else known.hourly_usd,
    )


def find_gpu(table: dict[str, Gpu], name: str) -> Gpu:
    """A GPU by name or by a part of its name that only it has (`4090`, `h100`, `a100-80`), ignoring case, spaces
    and punctuation."""

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    want = norm(name)
    exact = [g for n, g in table.items() if norm(n) == want]
    found = exact or [g for n, g in table.items() if want and want in norm(n)]
    if len(found) == 1:
        return found[0]
    what = "matches several GPUs" if found else "is not in the GPU table"
    raise TunesmithError(
        "Unknown GPU", [Problem(f"--gpu {name}", what, f"one of: {', '.join(table)} (or add it with --prices FILE)")]
    )
