"""OpenAIBackend against a tiny OpenAI-compatible server started here on 127.0.0.1 (real HTTP, no mocks).

The fake server answers /v1/models (with vLLM's max_model_len) and /v1/completions, and records each request
so the tests can check what was sent: the training prompt format, stop strings, greedy settings.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from serve.app import create_app
from serve.settings import Settings
from sqlft.config import EMBEDDED_MODEL, GenerationConfig
from sqlft.prompts.record import SQL_SYSTEM
from sqlft.model.remote import OpenAIBackend, RemoteError
from sqlft.prompts.templates import sql_prompt, stop_strings

DDL = "CREATE TABLE singer (id INT, name TEXT, age INT)"


class FakeOpenAI(BaseHTTPRequestHandler):
    requests: list[dict] = []  # (path, headers, body) of every request, shared by the server's threads

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.requests.append({"path": self.path, "headers": dict(self.headers), "body": None})
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": "sqlft", "object": "model", "max_model_len": 4096}]})
        else:
            self.reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path != "/v1/completions":
            return self.reply(404, {"error": {"message": f"no route {self.path}"}})
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if any("FAIL" in p for p in prompts):
            return self.reply(500, {"error": {"message": "model crashed", "type": "InternalServerError"}})
        if any("SLOW" in p for p in prompts):
            time.sleep(2)
        # The answer goes on past the stop text, as from a server that ignores `stop`: the client must cut it.
        choices = [{"index": i, "text": f"SELECT COUNT(*) FROM singer -- {i}<|im_end|>\n<|im_start|>user",
                    "finish_reason": "stop"} for i in range(len(prompts))]
        choices.reverse()  # order by "index", not by position
        self.reply(200, {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": choices,
                         "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}})

    def reply(self, status: int, data: dict) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def fake_openai():
    FakeOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def completions() -> list[dict]:
    return [r["body"] for r in FakeOpenAI.requests if r["path"] == "/v1/completions"]


def test_generate_sends_the_training_prompt_and_cuts_at_stop(fake_openai):
    backend = OpenAIBackend(fake_openai, "sqlft", api_key="k1")
    assert backend.template == "chatml" and backend.max_context == 4096  # from /v1/models
    prompts = [backend.sql_prompt(DDL, f"Question {i}?") for i in range(3)]
    assert prompts[0] == sql_prompt(DDL, "Question 0?", "chatml", system=SQL_SYSTEM)
    told: list[int] = []
    generations = backend.generate(prompts, GenerationConfig(max_new_tokens=32, batch_size=2), on_answer=told.append)
    assert [g.text for g in generations] == [f"SELECT COUNT(*) FROM singer -- {i % 2}" for i in range(3)]
    assert told == [2, 1]  # answers counted request by request (sqlft.model.protocol.Backend.generate)
    sent = completions()
    assert [b["prompt"] for b in sent] == [prompts[:2], prompts[2:]]  # batch_size prompts per request
    assert sent[0]["model"] == "sqlft" and sent[0]["max_tokens"] == 32 and sent[0]["temperature"] == 0.0
    assert sent[0]["stop"] == stop_strings("chatml") and "add_special_tokens" not in sent[0]
    assert all(r["headers"]["Authorization"] == "Bearer k1" for r in FakeOpenAI.requests)
    # Several prompts per request: usage is for all of them, so tokens are counted (approximately) here.
    assert generations[0].prompt_tokens == backend.count_tokens(prompts[0]) and generations[0].seconds > 0
    [one] = backend.generate(prompts[:1], GenerationConfig(max_new_tokens=8))
    assert (one.prompt_tokens, one.new_tokens) == (42, 7)  # one prompt: the server's own counts


def test_sampling_and_templates_with_their_own_bos(fake_openai):
    backend = OpenAIBackend(fake_openai, "sqlft", template="llama3", max_context=1000)
    assert backend.max_context == 1000 and not any(r["path"] == "/v1/models" for r in FakeOpenAI.requests)
    backend.generate([backend.sql_prompt(DDL, "q")],
                     GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, repetition_penalty=1.1))
    [sent] = completions()
    assert sent["prompt"][0].startswith("<|begin_of_text|>") and sent["add_special_tokens"] is False
    assert (sent["temperature"], sent["top_p"], sent["repetition_penalty"]) == (0.7, 0.9, 1.1)
    with pytest.raises(ValueError, match="beam search"):
        backend.generate(["q"], GenerationConfig(num_beams=2))
    with pytest.raises(ValueError, match="Unknown template"):
        OpenAIBackend(fake_openai, "sqlft", template="chatm", max_context=10)


def test_errors_say_what_and_where(fake_openai):
    backend = OpenAIBackend(fake_openai, "sqlft", timeout_s=0.5)
    with pytest.raises(RemoteError, match="answered 500: model crashed"):
        backend.generate(["FAIL"])
    with pytest.raises(RemoteError, match="cannot reach .*ReadTimeout"):
        backend.generate(["SLOW"])
    dead = OpenAIBackend("http://127.0.0.1:9/v1", "sqlft", timeout_s=1)  # nothing listens on port 9
    assert dead.max_context == 2048  # could not ask: the default, with a warning
    with pytest.raises(RemoteError, match="cannot reach http://127.0.0.1:9/v1/completions"):
        dead.generate(["q"])


def test_model_dir_gives_tokenizer_template_and_context(fake_openai):
    backend = OpenAIBackend(fake_openai, "sqlft", model_dir=EMBEDDED_MODEL)
    # A base model folder: its own chat template (as InferenceModel), its tokenizer, its config's context.
    assert backend.template == "tokenizer" and backend.max_context == 8192
    prompt = backend.sql_prompt(DDL, "How many singers?")
    assert prompt.startswith("<|im_start|>system") and backend.count_tokens(prompt) == len(
        backend.tokenizer(prompt)["input_ids"])
    assert "<|im_end|>" in backend.stops


def test_serve_with_the_openai_backend(fake_openai):
    settings = Settings(backend="openai", openai_url=fake_openai, model_name="sqlft", model="",
                        demo_databases=False, database=["restaurants"])
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.02)
        body = client.post("/sql", json={"question": "How many singers?", "db_schema": DDL}).json()
        assert body["sql"].startswith("SELECT COUNT(*) FROM singer") and body["valid"]
        assert client.get("/readyz").json()["max_context"] == 4096
        error = client.post("/sql", json={"question": "FAIL", "db_schema": DDL}).json()["error"]
        assert error["code"] == "backend_error" and "model crashed" in error["message"]


def test_eval_generates_through_the_openai_backend(fake_openai, tmp_path):
    """`sqlft eval NAME --openai-url URL`: a large eval on a serving engine, scored by sqlft as usual."""
    from eval.run import main as eval_main

    out = tmp_path / "eval"
    eval_main(["sqlft", "--data", "demo:eval", "--limit", "4", "--openai-url", fake_openai,
               "--template", "chatml", "--out", str(out)])
    sent = completions()
    assert sent and all(b["model"] == "sqlft" for b in sent)
    assert sum(len(b["prompt"]) if isinstance(b["prompt"], list) else 1 for b in sent) == 4
    assert all("<|im_start|>assistant\n" in p for b in sent for p in (b["prompt"] if isinstance(b["prompt"], list)
                                                                      else [b["prompt"]]))
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 4 and all(r["pred_sql"].startswith("SELECT COUNT(*) FROM singer") for r in results)
    assert {r["status"] for r in results} <= {"pred_exec_error", "rejected", "mismatch"}  # no 'singer' table there
