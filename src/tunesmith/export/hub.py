"""Publishing an export on the Hugging Face Hub through huggingface_hub's `HfApi`: one model repo, the first
exported of merged / adapter / gguf / ollama at its root (so `from_pretrained("ORG/NAME")` loads the merged
weights), every other exported folder under its format's name.

    layout = repo_layout(["adapter", "merged", "gguf"])   # {"adapter": "adapter", "merged": "", "gguf": "gguf"}
    token = hub_token()                                   # HF_TOKEN, else `hf auth login`'s; none: a clear error
    pushed = push_folders({"merged": out / "merged", "gguf": out / "gguf"}, "my-org/router", token, private=True)

The token goes to `HfApi` and nowhere else: it is never written. The endpoint is `HF_ENDPOINT` (default
https://huggingface.co), read when pushing. One that cannot be reached (no network, a wrong HF_ENDPOINT), offline
mode, a refused token or a repo the token may not write: a clear error naming the endpoint, no traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import Problem, TunesmithError

PRIMARY = ("merged", "adapter", "gguf", "ollama")  # which exported folder goes at the repo's root, first found
NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "requests", "urllib3")  # the HTTP clients huggingface_hub uses
HINT = "check the network; HF_ENDPOINT (unset: https://huggingface.co) must be a Hub; HF_TOKEN must be a write token"


@dataclass(frozen=True)
class HubPush:
    """Where an export went: the repo, its URL, and each format's folder in it ("" for the root)."""

    repo_id: str
    url: str
    paths: dict[str, str]
    private: bool


def repo_layout(formats: list[str]) -> dict[str, str]:
    """{format: its folder in the repo}: the first of merged / adapter / gguf / ollama at the root (""), the
    others under their names."""
    primary = next((f for f in PRIMARY if f in formats), None)
    return {f: "" if f == primary else f for f in formats}


def hub_endpoint() -> str:
    """The Hub pushed to: `HF_ENDPOINT`, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def check_repo_id(repo_id: str) -> str:
    """A repo id the Hub takes (ORG/NAME, or NAME in the token's own namespace), else a clear error."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise TunesmithError(
            "Not a Hub repo id", [Problem(f"--push-to-hub {repo_id}", str(exc).splitlines()[0], "give ORG/NAME")]
        ) from None
    return repo_id


def hub_token() -> str:
    """The token huggingface_hub would use (`HF_TOKEN`, else the one `hf auth login` saved); none is a clear error,
    raised before anything is exported or uploaded."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise TunesmithError(
            "No Hugging Face token",
            [
                Problem(
                    "HF_TOKEN",
                    "not set, and no token saved by `hf auth login`",
                    "export HF_TOKEN=<a write token from https://huggingface.co/settings/tokens> (or run "
                    "`hf auth login`), then export again",
                )
            ],
        )
    return token


def push_folders(folders: dict[str, Path], repo_id: str, token: str, private: bool = False) -> HubPush:
    """Create the repo (kept when it exists) and upload each exported folder to its place (`repo_layout`)."""
    from huggingface_hub import HfApi

    endpoint = hub_endpoint()
    layout = repo_layout(list(folders))
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(endpoint, repo_id):
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        for fmt, folder in folders.items():
            api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                path_in_repo=layout[fmt] or None,
                commit_message=f"tunesmith export: {fmt}",
            )
    return HubPush(repo_id, str(url), layout, private)


@contextlib.contextmanager
def hub_errors(endpoint: str, repo_id: str) -> Iterator[None]:
    """The Hub's failures as clear errors: offline mode, an HTTP refusal (its status), an endpoint not reached."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise TunesmithError(
            "Cannot push to the Hub",
            [Problem(f"HF_HUB_OFFLINE ({endpoint})", "huggingface_hub's offline mode is on", "unset HF_HUB_OFFLINE")],
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise TunesmithError(
            "The Hub refused the upload", [Problem(f"{endpoint} ({repo_id})", _refusal(status, exc), HINT)]
        ) from None
    except Exception as exc:
        if not _network_error(exc):
            raise
        raise TunesmithError(
            "Cannot reach the Hugging Face Hub",
            [Problem(endpoint, f"{type(exc).__name__}: {exc}", HINT)],
        ) from None


def _refusal(status: int | None, exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if status == 401:
        return f"the token was refused (401): {first}"
    if status == 403:
        return f"the token may not write this repo (403): {first}"
    return f"HTTP {status}: {first}" if status else first


def _network_error(exc: Exception) -> bool:
    """A connection that failed, timed out or broke: an OSError-like error, or one of the HTTP client's own."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.split(".")[0] in NETWORK_MODULES
