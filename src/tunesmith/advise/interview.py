"""Answers from the user: a short questionnaire, and the GPU of this machine."""

from __future__ import annotations

from tunesmith.advise.answers import NEEDS, VOLUMES, Answers


def questionnaire(a: Answers, prompt, confirm) -> Answers:
    """A short interview that fills (or overrides) the answers; `prompt`/`confirm` are typer.prompt/typer.confirm
    (or stand-ins in tests)."""
    needs = prompt(
        f"What must the model get right? ({', '.join(NEEDS)}; comma-separated)", default=",".join(a.needs) or "style"
    )
    a.needs = [n.strip() for n in str(needs).split(",") if n.strip()]
    a.facts_change = confirm(
        "Does it need facts that change (prices, policies, documents)?", default=bool(a.facts_change)
    )
    a.citations = confirm("Must answers cite current, auditable sources?", default=bool(a.citations))
    a.volume = prompt(f"Volume ({', '.join(VOLUMES)})", default=a.volume or "high")
    a.experimenting = confirm("Still experimenting with what the task is?", default=bool(a.experimenting))
    a.examples = int(prompt("How many good examples do you have?", default=a.examples if a.examples is not None else 0))
    gpu = prompt(
        "Your GPU (a name like 'RTX 4090', or its memory in GiB; empty for none)",
        default=a.gpu or "",
        show_default=False,
    )
    gpu = str(gpu).strip()
    if gpu:
        try:
            a.gpu_memory_gib, a.gpu = float(gpu), None
        except ValueError:
            a.gpu = gpu
    return a


def local_gpu(a: Answers) -> None:
    """Fill in this machine's GPU, when it has one (the card the user will most likely train on)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        a.gpu, a.gpu_memory_gib = f"{props.name} (this machine)", props.total_memory / 1024**3
