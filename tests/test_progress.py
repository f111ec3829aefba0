"""Progress bars: off a terminal every redraw is a plain line; answers are counted as they finish in a batch."""

import io

from sqlft.core.progress import progress


def test_progress_off_a_terminal_writes_plain_lines():
    out = io.StringIO()  # not a TTY
    with progress(3, "scoring", "pred", stream=out) as bar:
        for _ in range(3):
            bar.update(1)
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    last = text.strip().splitlines()[-1]
    assert "scoring" in last and "3/3" in last and "pred/s" in last, last


def test_decoding_reports_every_answer_as_it_finishes(model_for_progress):
    from sqlft.config import GenerationConfig

    told = []
    prompts = [model_for_progress.sql_prompt("CREATE TABLE t (a INT)", q) for q in ("How many rows?", "List a.",
                                                                                   "Largest a?")]
    model_for_progress.generate(prompts, GenerationConfig(max_new_tokens=12, batch_size=3), on_answer=told.append)
    assert sum(told) == 3 and len(told) >= 1
