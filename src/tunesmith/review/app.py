"""The review web app: FastAPI, server-rendered pages, a little plain JavaScript, on 127.0.0.1 behind a token.

    start_sample_review("data/synth.jsonl", "review/synth")      # or start_preference_review(...)
    run_review("review/synth")       # prints http://127.0.0.1:8765/?token=...; open it and review by keyboard

Access: every request needs the random token printed in the URL (`secrets.token_urlsafe`). A GET that carries it
as `?token=` is answered with a cookie holding it and a redirect to the same page without it (the token leaves the
address bar and the history); later requests send the cookie. Anything else is refused with a 403 page.

Routes: `GET /` goes to the first undecided item (or the summary when all are decided), so closing the app and
opening it again continues where it stopped; `GET /item/{pos}` one item; `GET /summary` the estimate or win rate;
`GET /api/summary` the same as JSON; `POST /api/items/{id}/decision` with `{"version", "action", "value"}` answers
200 `{"item", "progress", "next"}`, or 409 `{"error": "conflict", "message", "item", "progress"}` when the item
was decided meanwhile (another tab) on a newer version, 400 for a decision the item does not take, 404 for no such
item. Every accepted decision is saved before the answer (see `tunesmith.review.state`) and refreshes the review's
summary file (`summary.json`, or `preference.json` for A/B). An invalid state file is an error page naming the file
and field, never a traceback.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tunesmith.errors import Problem, TunesmithError, require_modules
from tunesmith.review.pages import item_page, message_page, progress_text, summary_page
from tunesmith.review.preference import summarize_preference, write_preference
from tunesmith.review.sample import summarize_sample, write_sample_summary
from tunesmith.review.state import (
    DecisionError,
    ReviewStore,
    SampleItem,
    State,
    describe,
    first_undecided,
    is_decided,
    original_reply,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

COOKIE = "tunesmith_review"
DEFAULT_PORT = 8765
FORBIDDEN = (
    "This review needs its access token: open the URL that `tunesmith review` printed (the one ending in ?token=...)."
)


class Decision(BaseModel):
    """A decision as the page posts it: the item version it was made on, the action, its value (a score, a text)."""

    version: int
    action: str
    value: Any = None


def summarize(state: State) -> dict:
    return summarize_sample(state) if state.kind == "sample" else summarize_preference(state)


def _write_summary(review_dir: Path, state: State) -> None:
    if state.kind == "sample":
        write_sample_summary(review_dir, state)
    else:
        write_preference(review_dir, state)


def item_view(item: Any) -> dict:
    """What the page needs to show an item's current decision."""
    view = {"id": item.id, "version": item.version, "decision": describe(item), "decided": is_decided(item)}
    if isinstance(item, SampleItem):
        view["reply"] = item.decision.edited if item.decision.edited is not None else original_reply(item)
        view["edited"] = item.decision.edited is not None
    return view


def progress(state: State) -> dict:
    done = sum(1 for it in state.items if is_decided(it))
    return {"decided": done, "total": len(state.items), "text": progress_text(state)}


def _conflict_message(item: Any, body: Decision) -> str:
    mine = f"score {body.value}" if body.action == "score" else body.action
    return (
        f"This item was decided in another tab meanwhile: it is now {describe(item)}. Your {mine} was not "
        "applied (it is kept in the journal); press a key again to decide it anew."
    )


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _cookie_name(request) -> str:
    # Cookies ignore ports: two reviews on one host must not overwrite each other's.
    return f"{COOKIE}_{request.url.port}" if request.url.port else COOKIE


def _answer(request, status: int, title: str, text: str, problems: list[str] | None = None):
    """An error as JSON for /api routes and as a page for the rest."""
    from fastapi.responses import HTMLResponse, JSONResponse

    if request.url.path.startswith("/api/"):
        code = {400: "invalid_request", 403: "forbidden", 404: "not_found"}.get(status, "error")
        return JSONResponse({"error": code, "message": text, "problems": problems or []}, status_code=status)
    return HTMLResponse(message_page(title, text, problems), status_code=status)


def _add_token_check(app: FastAPI, token: str) -> None:
    from fastapi import Request
    from fastapi.responses import RedirectResponse

    @app.middleware("http")
    async def _token(request: Request, call_next):
        given = request.query_params.get("token")
        if given is not None and _same(given, token):
            if request.method == "GET":
                rest = request.url.remove_query_params("token")
                response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), status_code=303)
            else:
                response = await call_next(request)
            response.set_cookie(_cookie_name(request), token, httponly=True, samesite="strict", path="/")
            return response
        if _same(request.cookies.get(_cookie_name(request), ""), token):
            return await call_next(request)
        return _answer(request, 403, "Forbidden", FORBIDDEN)


def _add_error_handlers(app: FastAPI) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(TunesmithError)
    async def _tunesmith(request: Request, exc: TunesmithError):
        return _answer(
            request, 500, exc.title, "The review cannot go on until this is fixed.", [str(p) for p in exc.problems]
        )

    @app.exception_handler(OSError)
    async def _os(request: Request, exc: OSError):  # a full disk, a read-only directory: say so, keep serving
        return _answer(request, 500, "Cannot save the review", f"Not saved: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}" for e in exc.errors()
        ]
        return _answer(request, 400, "Invalid request", "Invalid request: " + "; ".join(problems), problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        title = "Not found" if exc.status_code == 404 else "Error"
        return _answer(request, exc.status_code, title, str(exc.detail))


def _require_web() -> None:
    require_modules(("fastapi", "uvicorn"), "The review app's packages are not installed", "tunesmith review")


def create_review_app(review_dir: str | Path, token: str | None = None) -> FastAPI:
    """The review app for `review_dir` (a sample or an A/B review started there). The state is read and checked
    now: an invalid one raises TunesmithError before anything is served. `token` defaults to a fresh random one;
    the app keeps it in `app.state.token` and its `ReviewStore` in `app.state.store`."""
    _require_web()
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

    review_dir = Path(review_dir)
    store = ReviewStore(review_dir)
    store.on_change = lambda state: _write_summary(review_dir, state)
    token = token or secrets.token_urlsafe(24)
    app = FastAPI(title="tunesmith review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token, app.state.store = token, store
    _add_error_handlers(app)
    _add_token_check(app, token)

    @app.get("/")
    def index():
        first = first_undecided(store.current())
        return RedirectResponse("/summary" if first is None else f"/item/{first}", status_code=303)

    @app.get("/item/{pos}")
    def item(pos: int):
        state = store.current()
        if not 0 <= pos < len(state.items):
            raise HTTPException(404, f"No item {pos}: this review has items 0 to {len(state.items) - 1}.")
        return HTMLResponse(item_page(state, pos))

    @app.get("/summary")
    def summary():
        state = store.current()
        return HTMLResponse(summary_page(state, summarize(state)))

    @app.get("/api/summary")
    def api_summary() -> dict:
        return summarize(store.current())

    @app.post("/api/items/{item_id}/decision")
    def decide(item_id: str, body: Decision):
        try:
            accepted, item = store.decide(item_id, body.version, body.action, body.value)
        except KeyError:
            raise HTTPException(404, f"No item {item_id!r} in this review.") from None
        except DecisionError as exc:
            return JSONResponse({"error": "invalid_decision", "message": str(exc)}, status_code=400)
        state = store.state
        answer: dict = {"item": item_view(item), "progress": progress(state)}
        if not accepted:
            answer.update(error="conflict", message=_conflict_message(item, body))
            return JSONResponse(answer, status_code=409)
        nxt = first_undecided(state, after=[it.id for it in state.items].index(item.id))
        answer["next"] = "/summary" if nxt is None else f"/item/{nxt}"
        return answer

    return app


class ReviewServer:
    """The review app under uvicorn on a socket bound at once (port 0: a free one), so the URL is known before it
    serves. `run()` blocks (the CLI); `start()` / `stop()` (or `with`) serve from a background thread (tests)."""

    def __init__(
        self,
        review_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        self.review_dir = Path(review_dir)
        self.app = create_review_app(review_dir, token)
        self.token: str = self.app.state.token
        self.store: ReviewStore = self.app.state.store
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise TunesmithError(
                "Cannot listen",
                [Problem(f"{host}:{port}", exc.strerror or str(exc), "choose another port (0 picks a free one)")],
            ) from None
        self.port = self.sock.getsockname()[1]
        self.base = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        self.url = f"{self.base}/?token={self.token}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level=log_level, lifespan="off"))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (Ctrl+C)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self, timeout: float = 20) -> ReviewServer:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="tunesmith-review"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the review server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 20) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_review(
    review_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    open_browser: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve the review in `review_dir` until interrupted, after printing its URL (with the token) on stdout."""
    from rich.console import Console

    server = ReviewServer(review_dir, host, port, token, log_level)
    state = server.store.current()
    what = "Sample scoring" if state.kind == "sample" else "Blind A/B preference"
    con = Console(soft_wrap=True, highlight=False)
    con.print(f"{what} in {review_dir}: {progress_text(state)}.", markup=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        con.print(f"warning: listening on {host}: anyone who can reach it and has the URL can decide.", markup=False)
    con.print(f"Open {server.url}   (Ctrl+C stops; every decision is already saved)", markup=False)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.run()
