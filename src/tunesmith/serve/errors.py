"""Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with their status codes: the
server's own, a bad `response_format`, and FastAPI's request validation as one 400."""

from __future__ import annotations

from tunesmith.errors import TunesmithError


class ServeError(Exception):
    """A request the server answers with an OpenAI-style error body instead of a completion."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def format_error(exc: TunesmithError) -> ServeError:
    """A TunesmithError about `response_format` as OpenAI's 400 for that parameter."""
    detail = "; ".join(f"{p.where}: {p.message}" if p.where else p.message for p in exc.problems)
    return ServeError(400, f"Invalid response_format: {detail or exc.title}", param="response_format")


def validation_error(errors: list[dict]) -> ServeError:
    """One 400 naming every invalid field (the first as `param`), or saying the body is not JSON."""
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        detail = (bad_json[0].get("ctx") or {}).get("error", "")
        return ServeError(400, f"The request body is not valid JSON{': ' + str(detail) if detail else ''}.")
    problems, params = [], []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        params.append(param)
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{param}: {msg}" if param else msg)
    return ServeError(400, "Invalid request: " + "; ".join(problems), param=next((p for p in params if p), None))


def brief(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "…"
