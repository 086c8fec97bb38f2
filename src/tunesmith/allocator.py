"""The memory allocator a training process runs under: jemalloc when the system has it, glibc's malloc otherwise.

    tunesmith train my-project     # on Linux with libjemalloc installed: runs under jemalloc (LD_PRELOAD)
    TUNESMITH_ALLOCATOR=system tunesmith train my-project     # glibc's malloc, as Python starts

PyTorch on a CPU allocates and frees its activations (hundreds of tensors of varying sizes) on every step. Under
glibc's malloc a LoRA run of the built-in model on Banking77 slowed step after step (447 tokens/s over the first
60 of 300 steps, 400 over the last 60; over a whole 753-step run, 540 to 340 tokens/s); under jemalloc the same
300 steps held 514 -> 515 tokens/s: 1.20x the speed with 22% less peak memory (`benchmarks/allocator.py`).
Generation alone did not gain: the few-shot baseline's 600 long prompts took 4m24s under jemalloc against 2m34s
under malloc (kernel time 240 s against 43 s; a longer decay or no oversize arena changed nothing), so only the
verbs that train (`run`, `train`, `tune`) use it. An allocator can only be chosen before a process starts, so such a
command starts itself again once, with the library in `LD_PRELOAD`, before it imports anything heavy: the mechanism
of torch's own CPU launcher (`python -m torch.backends.xeon.run_cpu`), which looks only for an unversioned
`libjemalloc.so` in a few folders and so misses the library Debian and Ubuntu install (`libjemalloc.so.2` in the
multiarch folder). jemalloc keeps its own defaults (a `MALLOC_CONF` of yours is passed on): the settings torch's
launcher adds measured no faster here.

Nothing happens when the library is absent (`apt install libjemalloc2`, `conda install jemalloc`), when
`LD_PRELOAD` already names it, off Linux, or with `TUNESMITH_ALLOCATOR=system`. The Python API cannot change the
allocator of a process already running: start Python with `LD_PRELOAD` set (`preload_env` says what to set). Each
run's `env.json` records the allocator it ran under (`in_use`).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path

SWITCH = "TUNESMITH_ALLOCATOR"  # "auto" (the default: jemalloc when found) or "system" (leave malloc alone)
_STARTED = "TUNESMITH_ALLOCATOR_STARTED"  # set on the restarted process: never restart twice
_SEARCHED = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def find_jemalloc() -> Path | None:
    """The jemalloc shared library of this system (or of the active conda environment), or None."""
    prefixes = [os.environ[var] + "/lib" for var in ("CONDA_PREFIX", "VIRTUAL_ENV") if os.environ.get(var)]
    for folder in (*prefixes, *_SEARCHED):
        for name in ("libjemalloc.so.2", "libjemalloc.so"):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    found = ctypes.util.find_library("jemalloc")  # the loader's cache: other distributions' folders
    if found:
        for folder in ("/lib", "/usr/lib", "/lib64", "/usr/lib64"):
            if (Path(folder) / found).exists():
                return Path(folder) / found
    return None


def preload_env(environ: Mapping[str, str], library: Path | None) -> dict[str, str] | None:
    """The environment to start this process again with, so that it runs under `library` (jemalloc); None when
    there is nothing to do: no library, not Linux, switched off, already preloaded, or already restarted once."""
    if library is None or not sys.platform.startswith("linux"):
        return None
    if environ.get(SWITCH, "auto").strip().lower() == "system" or environ.get(_STARTED):
        return None
    preloaded = [item for item in environ.get("LD_PRELOAD", "").replace(" ", ":").split(":") if item]
    if any("jemalloc" in Path(item).name for item in preloaded):
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = ":".join([str(library), *preloaded])
    env[_STARTED] = "1"
    return env


def restart_under_jemalloc() -> None:
    """Start this command again under jemalloc (`os.execve`: same process id, arguments, stdin and stdout) when
    `preload_env` says so; return otherwise. Called first thing by the verbs that train (`tunesmith.cli.main`)."""
    env = preload_env(os.environ, find_jemalloc())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def in_use() -> str:
    """The allocator this process runs under: "jemalloc", "tcmalloc", "mimalloc" or "system" (the C library's)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if f"lib{name}" in maps:
            return name
    return "system"
