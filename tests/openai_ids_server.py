"""A real OpenAI-compatible server for tests of the `server` engine: `/v1/models` and `/v1/completions` on token-id
prompts, greedy through transformers on CPU, answering with the fields vLLM adds when asked (`return_token_ids`:
each choice's `token_ids` and `prompt_token_ids`). It appends every completions request body to a JSON-lines file,
so a test sees exactly what Hone sent.

    python openai_ids_server.py MODEL_DIR --port PORT --record FILE [--add-bos]

`--add-bos` makes it behave like a server that adds special tokens to the prompt it was given: it generates from
BOS + the ids and reports those.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--add-bos", action="store_true")
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    lock = threading.Lock()

    def complete(body: dict) -> dict:
        ids = ([tok.bos_token_id] if args.add_bos else []) + list(body["prompt"])
        stops = body.get("stop_token_ids") or [tok.eos_token_id]
        with lock, torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=body["max_tokens"], do_sample=False, temperature=None, top_p=None,
                                 top_k=None, eos_token_id=stops, pad_token_id=tok.pad_token_id)
        new = out[0, len(ids):].tolist()
        stopped = bool(new) and new[-1] in stops
        # The text as vLLM's incremental detokenizer returns it: a trailing U+FFFD (to it, a UTF-8 character not yet
        # complete) is left out, where HF's decode keeps it.
        text = tok.decode(new, skip_special_tokens=True).rstrip("\ufffd")
        choice = {"index": 0, "text": text, "logprobs": None,
                  "finish_reason": "stop" if stopped else "length"}
        if body.get("return_token_ids"):
            choice.update(token_ids=new, prompt_token_ids=ids)
        return {"id": "cmpl-test", "object": "text_completion", "created": int(time.time()), "model": body["model"],
                "choices": [choice], "usage": {"prompt_tokens": len(ids), "completion_tokens": len(new),
                                               "total_tokens": len(ids) + len(new)}}

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code: int, data: dict) -> None:
            raw = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.rstrip("/") == "/v1/models":
                self.reply(200, {"object": "list", "data": [{"id": args.model, "object": "model"}]})
            else:
                self.reply(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/completions" or not all(isinstance(t, int) for t in body.get("prompt", "")):
                self.reply(400, {"error": {"message": "this server takes token-id prompts on /v1/completions"}})
                return
            with lock, open(args.record, "a") as f:
                f.write(json.dumps(body) + "\n")
            self.reply(200, complete(body))

        def log_message(self, *a) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
