"""Server settings: one dataclass filled by `sqlft serve` flags (serve/main.py) or by tests.

Defaults are safe for a laptop: loopback only, bounded concurrency, bounded rows, bounded time.
"""

from dataclasses import dataclass, field

from sqlft.config import EMBEDDED_MODEL

DEMO_DATABASES = ("academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp")  # defog-data


@dataclass
class Settings:
    model: str = EMBEDDED_MODEL  # base model, training run or merged folder (local backend); tokenizer folder (openai)
    template: str | None = None  # prompt template; None: the run's / merged folder's own
    backend: str = "local"  # local (transformers in this process), openai (vLLM or any /v1/completions), fake
    openai_url: str = "http://127.0.0.1:8000/v1"  # openai backend: base URL including /v1
    model_name: str = "sqlft"  # openai backend: the served model name (vLLM --served-model-name)
    openai_api_key: str | None = None  # openai backend: key sent to the remote server
    api_key: str | None = None  # clients must send it (X-API-Key or Authorization: Bearer); None: open
    databases: dict[str, str] = field(default_factory=lambda: {n: n for n in DEMO_DATABASES})  # name -> source
    max_concurrency: int = 16  # /sql + /execute requests in flight; more are answered 429 at once
    request_timeout_s: float = 60.0  # whole request (queue + generation + execution); over it: 504
    execute_timeout_s: float = 5.0  # one SQL execution in the sandbox
    max_rows: int = 1000  # rows a client may ask for (and the default it gets)
    max_new_tokens: int = 128  # answer budget; clients may ask for less, never more
    max_batch: int = 8  # prompts per generate call (micro-batching)
    max_wait_ms: float = 20.0  # how long the first prompt of a batch waits for company
    batching: bool = True  # off: one prompt per generate call, in arrival order
    torch_threads: int = 0  # local backend: CPU threads for torch (0: all cores); 1 is faster on a busy shared CPU
    max_body_bytes: int = 1_000_000  # request bodies above this are refused (413) before parsing
