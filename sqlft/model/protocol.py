"""What every model backend is: the `Backend` protocol and the `Generation` it returns, without loading torch.

    model = InferenceModel.load("runs/x/merged")   # sqlft.model.generate: local weights
    model = OpenAIBackend(url, "sqlft")            # sqlft.model.remote: a serving engine's OpenAI-compatible API
    model = FakeBackend("SELECT 1")                # serve.testing: canned SQL, no model
    answers = model.generate([model.sql_prompt(ddl, question)], GenerationConfig(), on_answer=bar.update)

serve batches prompts of concurrent requests into one generate call; `sqlft eval` generates its answers in batches
and counts them as they finish (on_answer).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlft.config import GenerationConfig


@dataclass
class Generation:
    text: str  # what the model wrote, cut at the template's stop text
    prompt_tokens: int
    new_tokens: int
    seconds: float  # wall time of the batch it was generated in


class Backend(Protocol):
    """A model that answers prompts rendered with its own chat template."""

    template: str  # the chat template its prompts are rendered with (sqlft.prompts.templates)

    @property
    def max_context(self) -> int:
        """Tokens of prompt and answer together that the model takes."""
        ...

    def sql_prompt(self, db_schema: str, question: str) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompts: list[str], gen: GenerationConfig | None = None,
                 on_answer: Callable[[int], None] | None = None) -> list[Generation]:
        """Answers in the order of `prompts`; on_answer(n): n more answers are finished (progress bars)."""
        ...
