"""`tunesmith.serve` end to end: the real FastAPI app under uvicorn on a loopback port, the tiny random model (and a
LoRA adapter on it), and the official `openai` client. Replies are compared with what eval's `TransformersBackend`
generates for the same messages, so the server is shown to serve the model (and the adapter), not a stub; raw HTTP
checks the OpenAI-style error bodies and status codes, and that the server keeps serving after each."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import openai
import pytest

from tunesmith.eval.suite import EvalCase
from tunesmith.generate.backends import TransformersBackend
from tunesmith.models import resolve_model
from tunesmith.serve import ServedModel, create_app

MESSAGES = [{"role": "user", "content": "hello, where is my order?"}]
KEY = "sekrit"


@contextmanager
def running(served: ServedModel, api_key: str | None = None):
    """Serve `served` with uvicorn in a thread on a free loopback port; yield the base URL; stop it cleanly."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # uvicorn serves this very socket: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(served, api_key), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if request(base + "/health")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        assert not thread.is_alive(), "the server did not shut down"


def request(url: str, body: bytes | dict | None = None, key: str | None = None) -> tuple[int, dict]:
    """One raw HTTP request (POST when there is a body): the status and the JSON answer, errors included."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def client(base: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)


def expect_error(
    status_body: tuple[int, dict], status: int, type_: str, code: str | None = None, param: str | None = None
) -> dict:
    status_got, body = status_body
    assert status_got == status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] == type_ and err["code"] == code and err["param"] == param, err
    assert "Traceback" not in err["message"]
    return err


def eval_reply(model_dir, max_new_tokens: int, adapter=None) -> str:
    """What eval generates for MESSAGES: greedy, stopped at the end-of-turn token."""
    backend = TransformersBackend(resolve_model(str(model_dir)), adapter=adapter, precision="fp32")
    return backend.generate([EvalCase("c", MESSAGES)], max_new_tokens=max_new_tokens)[0].output


@pytest.fixture(scope="module")
def served(tiny_model_dir) -> ServedModel:
    return ServedModel(str(tiny_model_dir), name="tiny", precision="fp32")


@pytest.fixture(scope="module")
def base_url(served):
    with running(served) as base:
        yield base


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter whose B matrices are random, so it really changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def test_completion_is_the_models_greedy_reply(base_url, served, tiny_model_dir):
    resp = client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8)
    assert resp.id.startswith("chatcmpl-") and resp.object == "chat.completion" and resp.model == "tiny"
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content == eval_reply(tiny_model_dir, 8)
    usage = resp.usage
    assert usage.prompt_tokens == len(served.encode(MESSAGES)) > 0
    assert 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert (choice.finish_reason == "length") == (usage.completion_tokens == 8)


def test_stream_is_the_same_reply_in_pieces(base_url, tiny_model_dir):
    chunks = list(
        client(base_url).chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    with_choice = [c for c in chunks if c.choices]
    assert with_choice[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in with_choice if c.choices[0].delta.content]
    assert len(pieces) >= 2  # it streams: token by token, not one block
    assert "".join(pieces) == eval_reply(tiny_model_dir, 8)
    assert with_choice[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in with_choice[:-1])
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_stream_asked_for_usage_has_the_key_on_every_chunk(base_url):
    """OpenAI: with `include_usage`, every chunk carries `usage: null` and an extra last one (no choices) the
    counts; typed clients read the key."""
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 4, "stream": True}
    body["stream_options"] = {"include_usage": True}
    req = urllib.request.Request(
        base_url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        lines = [line.decode()[6:] for line in resp if line.startswith(b"data: ")]
    chunks = [json.loads(line) for line in lines if line.strip() != "[DONE]"]
    assert all("usage" in c for c in chunks) and all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_models_and_health(base_url):
    assert [m.id for m in client(base_url).models.list()] == ["tiny"]
    assert request(base_url + "/health") == (200, {"status": "ok", "model": "tiny"})


def test_adapter_is_applied(tiny_model_dir, adapter_dir):
    served = ServedModel(str(tiny_model_dir), adapter=adapter_dir, precision="fp32")
    assert served.name == tiny_model_dir.name  # the default name: the model directory's
    with running(served) as base:
        api = client(base)
        reply = api.chat.completions.create(model=served.name, messages=MESSAGES, max_tokens=12)
        text = reply.choices[0].message.content
        assert text == eval_reply(tiny_model_dir, 12, adapter=adapter_dir)
        assert text != eval_reply(tiny_model_dir, 12)  # the adapter changed the model's answer
        streamed = api.chat.completions.create(model=served.name, messages=MESSAGES, max_tokens=12, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text

        # A stop string ends the reply before it, streamed or not; the string itself is never sent.
        stop = text[len(text) // 2 : len(text) // 2 + 3]
        cut = text[: text.find(stop)]
        assert len(cut) < len(text)
        again = api.chat.completions.create(model=served.name, messages=MESSAGES, max_tokens=12, stop=[stop, "zzz"])
        assert (again.choices[0].message.content, again.choices[0].finish_reason) == (cut, "stop")
        streamed = api.chat.completions.create(
            model=served.name, messages=MESSAGES, max_tokens=12, stop=stop, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut

        # Sampling with a seed is repeatable, and another seed samples something else.
        sampled = [
            api.chat.completions.create(
                model=served.name, messages=MESSAGES, max_tokens=8, temperature=1.0, top_p=0.9, seed=seed
            )
            .choices[0]
            .message.content
            for seed in (7, 7, 8)
        ]
        assert sampled[0] == sampled[1] != sampled[2]


def test_concurrent_clients_get_the_same_reply(base_url):
    api, replies = client(base_url), []

    def ask():
        r = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8)
        replies.append(r.choices[0].message.content)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(replies) == 4 and len(set(replies)) == 1


def test_bad_requests_get_openai_errors_and_the_server_goes_on(base_url):
    url = base_url + "/v1/chat/completions"
    expect_error(request(url, b'{"model": "tiny", "messages": ['), 400, "invalid_request_error")
    err = expect_error(request(url, {"model": "tiny"}), 400, "invalid_request_error", param="messages")
    assert "messages" in err["message"]
    expect_error(request(url, {"model": "tiny", "messages": "hi"}), 400, "invalid_request_error", param="messages")
    expect_error(
        request(url, {"model": "tiny", "messages": MESSAGES, "max_tokens": "many"}),
        400,
        "invalid_request_error",
        param="max_tokens",
    )
    err = expect_error(
        request(url, {"model": "tiny", "messages": MESSAGES, "n": 2}), 400, "invalid_request_error", param="n"
    )
    assert "n=1" in err["message"]
    expect_error(
        request(url, {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}),
        400,
        "invalid_request_error",
        param="messages.0.role",
    )
    err = expect_error(
        request(url, {"model": "gpt-9", "messages": MESSAGES}),
        404,
        "invalid_request_error",
        code="model_not_found",
        param="model",
    )
    assert "gpt-9" in err["message"] and "tiny" in err["message"]
    expect_error(request(base_url + "/v1/nothing"), 404, "invalid_request_error")
    expect_error(
        request(url, {"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        400,
        "invalid_request_error",
        param="messages.0.content",
    )
    with pytest.raises(openai.NotFoundError):
        client(base_url).chat.completions.create(model="gpt-9", messages=MESSAGES, max_tokens=8)
    ok = client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8)
    assert ok.choices[0].message.content is not None


ROUTE = {
    "type": "object",
    "properties": {"queue": {"enum": ["billing", "technical", "shipping"]}, "urgent": {"type": "boolean"}},
    "required": ["queue", "urgent"],
    "additionalProperties": False,
}


def test_a_json_schema_response_format_holds_even_a_random_model_to_the_schema(base_url):
    import jsonschema

    api = client(base_url)
    schema_format = {"type": "json_schema", "json_schema": {"name": "route", "schema": ROUTE, "strict": True}}
    free = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=60).choices[0]
    assert not free.message.content.lstrip().startswith("{")  # the random model writes no JSON of its own
    done = api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=60, response_format=schema_format
    ).choices[0]
    reply = json.loads(done.message.content)
    jsonschema.validate(reply, ROUTE)
    assert done.finish_reason == "stop" and reply["queue"] in ROUTE["properties"]["queue"]["enum"]
    streamed = api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=60, stream=True, response_format=schema_format
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == done.message.content
    assert (
        api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=60, response_format={"type": "text"})
        .choices[0]
        .message.content
        == free.message.content
    )  # text: decoded freely, as before


def test_a_json_object_response_format_gives_a_json_object(base_url):
    api = client(base_url)
    done = api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=200, response_format={"type": "json_object"}
    ).choices[0]
    assert done.message.content.startswith("{")
    if done.finish_reason == "stop":  # a random model may still be writing its object at the limit
        assert isinstance(json.loads(done.message.content), dict)


def test_a_bad_response_format_is_a_400_naming_it(base_url):
    url = base_url + "/v1/chat/completions"
    for bad in (
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/missing"}}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$schema": 5, "type": "object"}}},  # was a 500
    ):
        err = expect_error(
            request(url, {"model": "tiny", "messages": MESSAGES, "response_format": bad}),
            400,
            "invalid_request_error",
            param="response_format",
        )
        assert "response_format" in err["message"]
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client(base_url).chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=8, response_format={"type": "yaml"}
        )  # type: ignore[arg-type]
    ok = client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8)
    assert ok.choices[0].message.content is not None


def test_generation_failure_is_a_short_500(base_url, served, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (pretend)")

    monkeypatch.setattr(served.model, "generate", boom)
    err = expect_error(
        request(base_url + "/v1/chat/completions", {"model": "tiny", "messages": MESSAGES}), 500, "server_error"
    )
    assert "out of memory" in err["message"] and len(err["message"]) < 300
    with pytest.raises(openai.APIError, match="out of memory"):  # mid-stream: an error event, then [DONE]
        list(client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, stream=True))
    monkeypatch.undo()
    ok = client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8)
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_client_that_leaves_mid_stream_stops_the_generation(base_url, served, monkeypatch):
    made: list[int] = []
    generate = served.model.generate

    def counting(*args, **kwargs):
        out = generate(*args, **kwargs)
        made.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(served.model, "generate", counting)
    body = json.dumps({"model": "tiny", "messages": MESSAGES, "max_tokens": 1500, "stream": True}).encode()
    req = urllib.request.Request(
        base_url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    resp = urllib.request.urlopen(req, timeout=30)
    for _ in range(3):
        assert resp.readline()
    resp.close()
    deadline = time.monotonic() + 30
    while not made and time.monotonic() < deadline:
        time.sleep(0.02)
    assert made and made[0] < 1500  # cancelled, not run to max_tokens for nobody


def test_api_key_and_context_length(tiny_model_dir):
    served = ServedModel(str(tiny_model_dir), name="tiny", max_context=96, precision="fp32")
    with running(served, api_key=KEY) as base:
        url = base + "/v1/chat/completions"
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 8}
        expect_error(request(url, body), 401, "invalid_request_error", code="invalid_api_key")
        expect_error(request(url, body, key="wrong"), 401, "invalid_request_error", code="invalid_api_key")
        expect_error(request(base + "/v1/models", key="wrong"), 401, "invalid_request_error", code="invalid_api_key")
        # The key is checked before the body is read.
        expect_error(request(url, b"{not json"), 401, "invalid_request_error", code="invalid_api_key")
        with pytest.raises(openai.AuthenticationError):
            client(base, "wrong").chat.completions.create(**body)
        assert request(base + "/health")[0] == 200  # health stays open for probes

        prompt = len(served.encode(MESSAGES))
        assert prompt + 8 <= 96 < prompt + 60
        err = expect_error(
            request(url, {**body, "max_tokens": 60}, key=KEY),
            400,
            "invalid_request_error",
            code="context_length_exceeded",
            param="messages",
        )
        assert "96" in err["message"] and str(prompt + 60) in err["message"]
        long = [{"role": "user", "content": "my invoice is wrong " * 40}]
        err = expect_error(
            request(url, {"model": "tiny", "messages": long}, key=KEY),
            400,
            "invalid_request_error",
            code="context_length_exceeded",
            param="messages",
        )
        assert f"messages resulted in {len(served.encode(long))} tokens" in err["message"]
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            client(base, KEY).chat.completions.create(model="tiny", messages=long, max_tokens=8)

        ok = client(base, KEY).chat.completions.create(**body)
        assert ok.usage.prompt_tokens == prompt
        # Without max_tokens, the default budget is clipped to the room the prompt leaves.
        rest = client(base, KEY).chat.completions.create(model="tiny", messages=MESSAGES)
        assert rest.usage.total_tokens <= 96


def test_serve_verb_serves_a_trained_run_with_its_adapter(tiny_project):
    """`tunesmith serve RUN` as a user starts it: the run's base with its adapter, behind an API key; the eval
    harness's endpoint backend measures it like the local checkpoint."""
    import os
    import subprocess
    import sys

    from tunesmith.generate.backends import EndpointBackend
    from tunesmith.pipeline import serve_target, train_project

    st = train_project(tiny_project)
    ref, adapter, name = serve_target(tiny_project, st.run_dir.name)
    assert adapter == st.run_dir / "adapter" and name.startswith("proj-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SERVE_KEY": "s3cret"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunesmith",
            "serve",
            st.run_dir.name,
            "--project",
            str(tiny_project),
            "--port",
            str(port),
            "--api-key-env",
            "SERVE_KEY",
            "--precision",
            "fp32",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(300):
            try:
                if request(f"http://127.0.0.1:{port}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        assert request(f"{base}/models")[0] == 401  # the key is required
        case = EvalCase(id="1", messages=[{"role": "user", "content": "ticket 3: my billing problem"}])
        reply = (
            client(base[: -len("/v1")], env["SERVE_KEY"])
            .chat.completions.create(model=name, messages=case.messages, max_tokens=8)
            .choices[0]
            .message.content
        )
        local = TransformersBackend(ref, adapter=adapter, precision="fp32").generate([case], max_new_tokens=8)[0]
        assert reply == local.output  # the run's adapter is served
        os.environ["SERVE_KEY"] = env["SERVE_KEY"]  # and the eval harness measures the server like any endpoint
        try:
            served = EndpointBackend(base, name, api_key_env="SERVE_KEY").generate([case], max_new_tokens=8)[0]
        finally:
            del os.environ["SERVE_KEY"]
        assert served.error is None and served.new_tokens == local.new_tokens
    finally:
        proc.terminate()
        proc.wait(timeout=30)


TOOLS = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}]
CALL_TEXT = 'Let me look.\n<tool_call>{"name": "get_order", "arguments": {"id": 42}}</tool_call>'


def test_a_tool_call_the_model_writes_is_returned_as_tool_calls(base_url, served, monkeypatch):
    """With tools offered, the Hermes-style call a model trained by tunesmith writes reaches the client as OpenAI's
    `tool_calls` (finish_reason `tool_calls`), whole and streamed; it was plain text in `content`, which no agent
    framework reads as a call."""
    from tunesmith.serve.model import Completion

    class Held:  # the stream of a reply that writes the call
        prompt_ids, completion_tokens, finish_reason = [1, 2], 9, "stop"

        def __iter__(self):
            yield from (CALL_TEXT[:20], CALL_TEXT[20:])

        def cancel(self):
            pass

    monkeypatch.setattr(served, "complete", lambda ids, sampling: Completion(CALL_TEXT, len(ids), 9, "stop"))
    monkeypatch.setattr(served, "stream", lambda ids, sampling: Held())
    whole = client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me look."
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.function.name == "get_order"
    assert json.loads(call.function.arguments) == {"id": 42}
    chunks = list(client(base_url).chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert [tc.function.name for tc in calls] == ["get_order"] and json.loads(calls[0].function.arguments) == {"id": 42}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    plain = client(base_url).chat.completions.create(model="tiny", messages=MESSAGES)  # no tools offered: text
    assert plain.choices[0].message.content == CALL_TEXT and not plain.choices[0].message.tool_calls


def test_tool_choice_none_offers_no_tools_and_a_forced_choice_is_a_400(base_url):
    url = base_url + "/v1/chat/completions"
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 2}
    bare = client(base_url).chat.completions.create(**body)
    offered = client(base_url).chat.completions.create(**body, tools=TOOLS)
    withheld = client(base_url).chat.completions.create(**body, tools=TOOLS, tool_choice="none")
    assert offered.usage.prompt_tokens > bare.usage.prompt_tokens == withheld.usage.prompt_tokens
    for forced in ("required", {"type": "function", "function": {"name": "get_order"}}):
        status, answer = request(url, {**body, "tools": TOOLS, "tool_choice": forced})
        assert status == 400 and "cannot force a tool call" in answer["error"]["message"]
