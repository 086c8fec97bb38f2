"""What the command modules share: the help of shared options, `--budget` and endpoint parsing, the console."""

from __future__ import annotations

from tunesmith.cli.render import console

SET_HELP = "Override a config field, e.g. --set train.lr=1e-4 (repeatable)."
BUDGET_HELP = "Wall time for the search's trials: 30m, 1h, 90s, or minutes (default: tune.budget_minutes)."

__all__ = ["SET_HELP", "BUDGET_HELP", "console", "minutes", "endpoint_config"]


def minutes(budget: str | None) -> float | None:
    """`30m`, `1h`, `90s` or a bare number of minutes -> minutes; a clear error otherwise."""
    import re

    from tunesmith.errors import fail

    if budget is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", budget)
    if not m or float(m.group(1)) <= 0:
        raise fail("Bad --budget", "--budget", f"{budget!r} is not a duration", "e.g. 30m, 1h, 90s or 45")
    return float(m.group(1)) * {"s": 1 / 60, "m": 1, "min": 1, "h": 60, None: 1}[m.group(2)]


def endpoint_config(endpoint: str | None, endpoint_model: str | None, api_key_env: str | None, concurrency: int):
    """`--endpoint` and its companions as an EndpointConfig (None without `--endpoint`)."""
    from tunesmith.config import EndpointConfig
    from tunesmith.errors import Problem, TunesmithError

    if not endpoint:
        return None
    if not endpoint_model:
        raise TunesmithError(
            "Missing endpoint model",
            [Problem("--endpoint-model", "required with --endpoint", "the model name the server serves")],
        )
    return EndpointConfig(base_url=endpoint, model=endpoint_model, api_key_env=api_key_env, concurrency=concurrency)
