"""A real HTTP server on 127.0.0.1 that speaks enough of three provider APIs for the official SDKs:
Anthropic `/v1/messages` and `/v1/messages/batches`, and OpenAI `/v1/chat/completions`.

It stands in for the provider in tests and benchmarks. Its "model" grades deterministically by reading Hone's
own prompt format (an answer passes when it contains the reference), so every verdict is predictable. Faults
are scripted by markers inside the judged answer, so they travel through files and subprocesses:

    [[fault:429]] [[fault:500]] [[fault:529]] [[fault:slow]]   first attempt of that prompt fails (`*N`: N attempts)
    [[fault:400]]                                                 always an invalid-request error
    [[fault:malformed]]        first ask gets prose instead of JSON; the re-ask gets a valid reply
    [[fault:malformed-always]] every ask gets prose
    [[fault:wrong-id]]         first ask gets a verdict about another item
    [[fault:thinking]]         (Anthropic) a thinking block holding a decoy verdict comes before the text block
    [[fault:batch-missing]]    first batch holding it returns no result for it, and one for an unknown custom_id
    [[fault:batch-errored]]    first batch holding it returns an `errored` (overloaded) result

It counts every answer it delivers, by a hash of the conversation (`paid`), so tests can prove nothing was
paid twice. It checks the API key (Bearer or x-api-key) and rejects any other with 401.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_FAULT = re.compile(r"\[\[fault:([a-z0-9-]+)(?:\*(\d+))?\]\]")
_STAMP = "2026-01-01T00:00:00Z"


def _between(text: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, flags=re.S)
    return m.group(1) if m else None


def correct(answer: str, reference: str | None) -> bool:
    """The fake model's notion of correct: the reference appears in the answer (numbers compared as numbers)."""
    if reference is None or reference.startswith("(none"):
        return "WRONG" not in answer
    ref = reference.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", ref):
        return any(float(x) == float(ref) for x in re.findall(r"-?\d+(?:\.\d+)?", answer.replace(",", "")))
    return ref.lower() in answer.lower()


class FakeLLM:
    def __init__(self, key: str = "test-key", latency: float = 0.0, slow_seconds: float = 2.0,
                 retry_after: str = "0.2", batch_seconds: float = 0.2, bias: str | None = None):
        self.key = key
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.batch_seconds = batch_seconds
        self.bias = bias  # "A": the pairwise "model" always prefers the answer shown first
        self.lenient = False  # True: the grading "model" passes every answer
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.paid: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_creates = 0
        self.inflight = 0
        self.max_inflight = 0
        self.bad_auth = 0
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "FakeLLM":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeLLM":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----- the "model" -------------------------------------------------------------------------------------
    def reply(self, messages: list[dict[str, str]], fault: str | None) -> str:
        prompt = messages[0]["content"]
        item = re.search(r"Item id: (\S+)", prompt)
        item_id = item.group(1) if item else "?"
        first_ask = len(messages) == 1
        if fault == "malformed-always" or (fault == "malformed" and first_ask):
            return "I would say this one passes, it looks fine to me."
        if fault == "wrong-id" and first_ask:
            item_id = "some-other-item"
        ref = _between(prompt, "reference")
        if "<answer_a>" in prompt:
            a, b = _between(prompt, "answer_a") or "", _between(prompt, "answer_b") or ""
            ca, cb = correct(a, ref), correct(b, ref)
            winner = self.bias or ("tie" if ca == cb else "A" if ca else "B")
            return json.dumps({"id": item_id, "winner": winner, "reason": "compared against the reference"})
        ok = self.lenient or correct(_between(prompt, "answer") or "", ref)
        return json.dumps({"id": item_id, "verdict": "pass" if ok else "fail", "score": 1.0 if ok else 0.0,
                           "reason": "matches the reference" if ok else "differs from the reference"})

    def fault_for(self, messages: list[dict[str, str]], conv: str, batch: bool = False) -> str | None:
        """The scripted fault that applies to this attempt of this conversation, if any."""
        m = _FAULT.search(messages[0]["content"])
        if not m:
            return None
        kind, times = m.group(1), int(m.group(2) or 1)
        if kind.startswith("batch-") != batch:
            return None
        with self.lock:
            self.attempts[conv] += 1
            attempt = self.attempts[conv]
        if kind in ("400", "malformed", "malformed-always", "wrong-id", "thinking"):
            return kind
        return kind if attempt <= times else None

    @staticmethod
    def conversation(system: str, messages: list[dict[str, str]]) -> str:
        return hashlib.sha256(json.dumps([system, messages], sort_keys=True).encode()).hexdigest()

    def usage(self, system: str, messages: list[dict[str, str]], text: str) -> tuple[int, int]:
        return (len(system) + sum(len(m["content"]) for m in messages)) // 4 + 1, len(text) // 4 + 1

    def anthropic_message(self, model: str, system: str, messages: list[dict[str, str]], text: str,
                          thinking: bool = False) -> dict:
        tin, tout = self.usage(system, messages, text)
        content = [{"type": "text", "text": text}]
        if thinking:
            decoy = '{"id": "x", "verdict": "pass", "score": 1, "reason": "decoy"}'
            content.insert(0, {"type": "thinking", "thinking": f"Maybe {decoy}", "signature": "c2ln"})
        return {"id": f"msg_{hashlib.sha1(text.encode()).hexdigest()[:16]}", "type": "message", "role": "assistant",
                "model": model, "content": content, "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": tin, "output_tokens": tout}}

    def batch_view(self, batch_id: str) -> dict:
        b = self.batches[batch_id]
        ended = time.time() >= b["ends"]
        n = len(b["requests"])
        return {"id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else n, "succeeded": n if ended else 0, "errored": 0,
                                   "canceled": 0, "expired": 0},
                "created_at": _STAMP, "expires_at": _STAMP, "ended_at": _STAMP if ended else None,
                "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None}

    def batch_results(self, batch_id: str) -> list[dict]:
        """Computed once per batch (a batch is charged once), returned in reverse order of submission."""
        b = self.batches[batch_id]
        if b["results"] is None:
            lines = []
            for req in b["requests"]:
                params, cid = req["params"], req["custom_id"]
                system, messages = params.get("system", ""), params["messages"]
                conv = self.conversation(system, messages)
                fault = self.fault_for(messages, conv, batch=True)
                if fault == "batch-missing":
                    lines.append({"custom_id": "unknown-" + cid[:20], "result": {"type": "succeeded", "message":
                                  self.anthropic_message(params["model"], system, messages, self.reply(messages, None))}})
                    continue
                if fault == "batch-errored":
                    lines.append({"custom_id": cid, "result": {"type": "errored", "error": {
                        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}})
                    continue
                text = self.reply(messages, self.fault_for(messages, conv))
                with self.lock:
                    self.paid[conv] += 1
                lines.append({"custom_id": cid, "result": {"type": "succeeded",
                              "message": self.anthropic_message(params["model"], system, messages, text)}})
            b["results"] = lines[::-1]
        return b["results"]


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # bursts of concurrent connections must not be refused
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeLLM

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms to every answer.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        with self.server_fake.lock:
            self.server_fake.statuses[status] += 1

    def _error(self, status: int, kind: str, message: str, openai: bool, headers: dict[str, str] | None = None):
        body = ({"error": {"message": message, "type": kind, "code": None}} if openai
                else {"type": "error", "error": {"type": kind, "message": message}})
        self._send(status, body, headers)

    def _authorized(self) -> bool:
        key = self.server_fake.key
        bearer = self.headers.get("Authorization", "")
        return bearer == f"Bearer {key}" or self.headers.get("x-api-key") == key

    def do_GET(self) -> None:
        fake = self.server_fake
        if self.path.split("?")[0] == "/v1/models":  # what OpenAI-compatible servers list themselves with
            return self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0,
                                                                  "owned_by": "hone-tests"}]})
        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", self.path.split("?")[0])
        if not m or m.group(1) not in fake.batches:
            return self._error(404, "not_found_error", "no such batch", openai=False)
        if not self._authorized():
            fake.bad_auth += 1
            return self._error(401, "authentication_error", "invalid x-api-key", openai=False)
        if m.group(2):
            lines = fake.batch_results(m.group(1))
            return self._send(200, None, raw="".join(json.dumps(x) + "\n" for x in lines).encode())
        return self._send(200, fake.batch_view(m.group(1)))

    def do_POST(self) -> None:
        fake = self.server_fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        path = self.path.split("?")[0]
        openai = path == "/v1/chat/completions"
        if path not in ("/v1/messages", "/v1/messages/batches", "/v1/chat/completions"):
            return self._error(404, "not_found_error", f"no route {path}", openai)
        if not self._authorized():
            fake.bad_auth += 1
            return self._error(401, "authentication_error", "invalid api key", openai)
        if path == "/v1/messages/batches":
            with fake.lock:
                fake.batch_creates += 1
                batch_id = f"msgbatch_{fake.batch_creates:04d}"
                fake.batches[batch_id] = {"requests": body["requests"], "ends": time.time() + fake.batch_seconds,
                                          "results": None}
            return self._send(200, fake.batch_view(batch_id))
        with fake.lock:
            fake.inflight += 1
            fake.max_inflight = max(fake.max_inflight, fake.inflight)
        try:
            self._answer(body, openai)
        finally:
            with fake.lock:
                fake.inflight -= 1

    def _answer(self, body: dict, openai: bool) -> None:
        fake = self.server_fake
        messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
        system = body.get("system", "")
        if openai and messages and messages[0]["role"] == "system":
            system, messages = messages[0]["content"], messages[1:]
        conv = fake.conversation(system, messages)
        fault = fake.fault_for(messages, conv)
        with fake.lock:
            fake.requests.append({"conv": conv, "fault": fault, "t": time.time(), "body": body})
        if fake.latency:
            time.sleep(fake.latency)
        if fault == "429":
            return self._error(429, "rate_limit_error", "slow down", openai, {"retry-after": fake.retry_after})
        if fault == "500":
            return self._error(500, "api_error", "internal error", openai)
        if fault == "529":
            return self._error(529, "overloaded_error", "Overloaded", openai)
        if fault == "400":
            return self._error(400, "invalid_request_error", "prompt is not acceptable", openai)
        if fault == "slow":
            time.sleep(fake.slow_seconds)
        text = fake.reply(messages, fault)
        with fake.lock:
            fake.paid[conv] += 1
        if openai:
            tin, tout = fake.usage(system, messages, text)
            return self._send(200, {
                "id": f"chatcmpl-{conv[:12]}", "object": "chat.completion", "created": 1767225600,
                "model": body["model"], "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                     "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}})
        return self._send(200, fake.anthropic_message(body["model"], system, messages, text, fault == "thinking"))


def main() -> None:
    """Run a server from the command line (benchmarks start it in its own process): prints its URL."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--key", default="test-key")
    args = p.parse_args()
    fake = FakeLLM(key=args.key, latency=args.latency).start()
    print(fake.url, flush=True)
    try:
        fake.thread.join()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
