"""Stand-ins for tests, the load test and UI work: a fake model that writes canned SQL, and an in-thread server.

    backend = FakeBackend(sql="SELECT COUNT(*) FROM restaurant", delay_s=0.05)
    with running_server(create_app(Settings(backend="fake"), load_backend=lambda s: backend)) as url: ...

`sqlft serve --backend fake` serves the fake: the API and the page can be tried without any model.
"""

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from sqlft.config import GenerationConfig
from sqlft.model.protocol import Generation
from sqlft.core.net import free_port, wait_for_http
from sqlft.prompts.templates import sql_prompt


class FakeBackend:
    """Writes `sql` (or, by default, a query on the first table of the prompt's schema) for every prompt.

    A generate call sleeps delay_s + per_prompt_s * len(prompts), a crude model of a batched forward pass:
    most of the cost is per call, little per extra row.
    """

    template = "chatml"
    max_context = 2048

    def __init__(self, sql: str | Callable[[str], str] | None = None, *, delay_s: float = 0.0,
                 per_prompt_s: float = 0.0, max_context: int = 2048):
        self.sql, self.delay_s, self.per_prompt_s, self.max_context = sql, delay_s, per_prompt_s, max_context
        self.calls: list[int] = []  # prompts per generate call

    def sql_prompt(self, db_schema: str, question: str) -> str:
        return sql_prompt(db_schema, question, self.template)

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1  # ~4 characters per token for English and SQL

    def generate(self, prompts: list[str], gen: GenerationConfig | None = None,
                 on_answer: Callable[[int], None] | None = None) -> list[Generation]:
        self.calls.append(len(prompts))
        seconds = self.delay_s + self.per_prompt_s * len(prompts)
        time.sleep(seconds)
        texts = [self.answer(p) for p in prompts]
        if on_answer is not None:
            on_answer(len(prompts))
        return [Generation(t, self.count_tokens(p), self.count_tokens(t), seconds) for p, t in zip(prompts, texts)]

    def answer(self, prompt: str) -> str:
        if callable(self.sql):
            return self.sql(prompt)
        if self.sql is not None:
            return self.sql
        table = re.search(r"CREATE TABLE\s+(\"[^\"]+\"|\w+)", prompt, re.IGNORECASE)
        return f"SELECT * FROM {table.group(1)} LIMIT 5" if table else "SELECT 1"


@contextmanager
def running_server(app: FastAPI, *, port: int | None = None, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; yields its base URL once /readyz answers 200."""
    port = port or free_port()
    from serve.protocol import guarded_protocol

    settings = app.state.sqlft.settings
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           http=guarded_protocol(settings.header_timeout_s)))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/readyz", timeout_s=ready_timeout_s, alive=thread.is_alive, interval_s=0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
