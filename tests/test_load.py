"""Bounded load on loopback: 8 threads x 25 requests against the review app and against the server, valid and
malformed requests mixed. No accepted decision is lost (each is in the state and the journal, exactly once), a
malformed request is a 4xx (never a 500), and both keep serving afterwards."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from conftest import synthetic_review
from test_security import raw
from tunesmith.review.state import read_journal, read_state

THREADS, PER_THREAD = 8, 25
TOKEN = "load-token"


def _hammer(worker) -> list:
    with ThreadPoolExecutor(THREADS) as pool:
        return [r for rs in pool.map(worker, range(THREADS)) for r in rs]


MALFORMED_DECISIONS = [
    b"{not json",
    b"",
    b"[]",
    b'"keep"',
    b"null",
    json.dumps({"action": "keep"}).encode(),  # no version
    json.dumps({"version": "zero", "action": "keep"}).encode(),
    json.dumps({"version": 0, "action": "explode"}).encode(),
    json.dumps({"version": 0, "action": "score", "value": 9}).encode(),
    json.dumps({"version": 0, "action": "score", "value": True}).encode(),
    json.dumps({"version": 0, "action": "edit", "value": {"x": 1}}).encode(),
    json.dumps({"version": 0, "action": ["keep"]}).encode(),
    b'{"version": 1e999, "action": "keep"}',
]


def test_the_review_app_under_concurrent_decisions_loses_nothing(tmp_path):
    from tunesmith.review import ReviewServer

    review = synthetic_review(tmp_path, 24, seed=2)
    ids = [it.id for it in read_state(review).items]
    known = {i: 0 for i in ids}  # the version each client last saw (shared and racy on purpose: conflicts happen)
    lock = threading.Lock()

    with ReviewServer(review, port=0, token=TOKEN) as server:
        base, cookie = server.base, {"Cookie": f"tunesmith_review_{server.port}={TOKEN}"}

        def worker(t: int) -> list:
            rng, out = random.Random(t), []
            for i in range(PER_THREAD):
                kind = i % 5
                if kind <= 2:  # a real decision on the version last seen
                    item = rng.choice(ids)
                    action, value = rng.choice(
                        [("keep", None), ("reject", None), ("score", rng.randint(1, 5)), ("edit", f"reply {t}-{i}")]
                    )
                    with lock:
                        version = known[item]
                    body = json.dumps({"version": version, "action": action, "value": value}).encode()
                    status, text = raw(base, "POST", f"/api/items/{item}/decision", body, cookie)
                    answer = json.loads(text)
                    if status in (200, 409):
                        with lock:
                            known[item] = max(known[item], answer["item"]["version"])
                    out.append(("decide", status, item, version, action, value))
                elif kind == 3:  # malformed, unknown item, or no token
                    choice = rng.randrange(len(MALFORMED_DECISIONS) + 3)
                    if choice < len(MALFORMED_DECISIONS):
                        status, _ = raw(
                            base, "POST", f"/api/items/{rng.choice(ids)}/decision", MALFORMED_DECISIONS[choice], cookie
                        )
                    elif choice == len(MALFORMED_DECISIONS):
                        status, _ = raw(
                            base,
                            "POST",
                            "/api/items/no-such-item/decision",
                            b'{"version": 0, "action": "keep"}',
                            cookie,
                        )
                    elif choice == len(MALFORMED_DECISIONS) + 1:
                        status, _ = raw(
                            base, "POST", f"/api/items/{ids[0]}/decision", b'{"version": 0, "action": "keep"}'
                        )  # no token
                    else:
                        status, _ = raw(base, "GET", f"/item/{rng.choice(['-3', 'x', '10000', '1e9'])}", None, cookie)
                    out.append(("bad", status))
                else:
                    path = rng.choice(["/api/summary", "/summary", f"/item/{rng.randrange(len(ids))}", "/"])
                    out.append(("read", raw(base, "GET", path, None, cookie)[0]))
            return out

        results = _hammer(worker)
        assert raw(base, "GET", "/api/summary", None, cookie)[0] == 200  # still serving

    statuses = Counter(r[1] for r in results)
    assert not [s for s in statuses if s >= 500], statuses
    assert {r[1] for r in results if r[0] == "bad"} <= {400, 403, 404}, statuses
    assert {r[1] for r in results if r[0] == "read"} <= {200, 303}, statuses
    decisions = [r for r in results if r[0] == "decide"]
    assert {r[1] for r in decisions} <= {200, 409}
    accepted = [r for r in decisions if r[1] == 200]
    assert accepted and len(decisions) == THREADS * PER_THREAD * 3 // 5

    journal = read_journal(review)
    # every decision that reached the store is journaled once, in order; nothing malformed was
    assert [e["seq"] for e in journal] == list(range(1, len(journal) + 1))
    assert len(journal) == len(decisions)
    assert Counter((e["item"], e["version"]) for e in journal if e["accepted"]) == Counter(
        (r[2], r[3]) for r in accepted
    )
    # the state holds every accepted decision: one version step each, and the last one's content
    state = read_state(review)
    per_item = Counter(r[2] for r in accepted)
    for item in state.items:
        assert item.version == per_item[item.id], item.id
        if per_item[item.id]:
            last = max((r for r in accepted if r[2] == item.id), key=lambda r: r[3])
            assert last[3] == item.version - 1
            action, value = last[4], last[5]
            if action == "edit":
                assert item.decision.edited == value
            else:
                assert item.decision.rating == (value if action == "score" else action)
    assert state.seq == len(journal)


MALFORMED_CHATS = [
    b"{not json",
    b"",
    b"[]",
    json.dumps({"model": "tiny"}).encode(),  # no messages
    json.dumps({"model": "tiny", "messages": "hi"}).encode(),
    json.dumps({"model": "tiny", "messages": [{"role": "user", "content": 5}]}).encode(),
    json.dumps({"model": "tiny", "messages": [{"role": "banana", "content": "x"}]}).encode(),
    json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(),
    json.dumps({"model": "../../etc/passwd", "messages": [{"role": "user", "content": "x"}]}).encode(),
    json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}).encode(),
    json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(),
    json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 5}).encode(),
    json.dumps({"model": "tiny", "messages": []}).encode(),
]


def test_the_server_under_concurrent_valid_and_malformed_requests(tiny_model_dir):
    from test_serve import running
    from tunesmith.serve import ServedModel

    served = ServedModel(str(tiny_model_dir), name="tiny", precision="fp32")
    with running(served) as base:

        def worker(t: int) -> list:
            rng, out = random.Random(100 + t), []
            for i in range(PER_THREAD):
                if i % 2 == 0:
                    body = {
                        "model": "tiny",
                        "max_tokens": 2,
                        "stream": i % 6 == 0,
                        "messages": [{"role": "user", "content": f"where is order {t}-{i}?"}],
                    }
                    status, text = raw(base, "POST", "/v1/chat/completions", json.dumps(body).encode())
                    ok = status == 200 and ("[DONE]" in text if body["stream"] else json.loads(text)["choices"])
                    out.append(("valid", status, bool(ok)))
                elif i % 4 == 1:
                    status, text = raw(base, "POST", "/v1/chat/completions", rng.choice(MALFORMED_CHATS))
                    out.append(("bad", status, "error" in json.loads(text)))
                else:
                    path = rng.choice(["/v1/models", "/health", "/v1/nope", "/v1/chat/completions"])
                    out.append(("get", raw(base, "GET", path)[0], True))
            return out

        results = _hammer(worker)
        assert raw(base, "GET", "/health")[0] == 200  # still serving
        after = raw(
            base,
            "POST",
            "/v1/chat/completions",
            json.dumps({"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        )
        assert after[0] == 200

    statuses = Counter(r[1] for r in results)
    assert not [s for s in statuses if s >= 500], statuses
    assert all(r[1] == 200 and r[2] for r in results if r[0] == "valid"), statuses
    assert all(400 <= r[1] < 500 and r[2] for r in results if r[0] == "bad"), statuses
    assert {r[1] for r in results if r[0] == "get"} <= {200, 404, 405}, statuses
