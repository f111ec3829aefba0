"""Execution-guided decoding: answers that do not run on the empty schema are replaced by sampled ones that do."""

from sqlft.config import GenerationConfig
from sqlft.generate import Generation
from eval.guided import EmptySchemaCheck, ExecutionGuide

DDL = "CREATE TABLE singer (singer_id INT, name TEXT, country TEXT);\nCREATE TABLE concert (id INT, singer_id INT);"


def test_empty_schema_check_names_what_is_wrong_and_reads_no_data():
    check = EmptySchemaCheck("sqlite")
    try:
        assert check.error("SELECT name FROM singer WHERE country = 'France'", DDL) == ""
        assert check.error('SELECT count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id '
                           'WHERE T1.name = "Ann"', DDL) == ""  # SQLite's "string" literal is rewritten
        assert "age" in check.error("SELECT age FROM singer", DDL)
        assert "band" in check.error("SELECT * FROM band", DDL)
        assert check.error("SELECT name FROM singer WHERE", DDL).startswith("parse")
        assert check.error("The answer is 3.", DDL)
    finally:
        check.close()


class SamplingFake:
    """Greedy answers from `greedy`; each sampling call pops the next answer of `samples[question]`."""

    def __init__(self, samples: dict[str, list[str]]):
        self.samples, self.calls = samples, []

    def generate(self, prompts, gen):
        self.calls.append((list(prompts), gen.do_sample, gen.temperature))
        return [Generation(self.samples[p].pop(0), 10, 5, 1.0) for p in prompts]


def test_only_failing_answers_are_resampled_until_one_runs():
    model = SamplingFake({"a": ["SELECT bad FROM singer", "SELECT name FROM singer"],
                          "b": ["SELECT nope", "SELECT worse", "SELECT still FROM nothing"]})
    greedy = [Generation("SELECT bad_column FROM singer", 10, 5, 1.0),
              Generation("SELECT country FROM singer", 10, 5, 1.0),
              Generation("SELECT missing FROM singer", 10, 5, 1.0)]
    guide = ExecutionGuide("sqlite", candidates=3, temperature=0.5)
    try:
        out = guide.improve(model, ["a", "c", "b"], [DDL] * 3, greedy, GenerationConfig())
    finally:
        guide.close()
    assert out[0].text == "SELECT name FROM singer" and out[0].seconds == 2.0  # found in round 2
    assert out[1] is greedy[1]  # ran already: never resampled
    assert out[2] is greedy[2]  # no sample ran: the greedy answer stays
    assert [c[0] for c in model.calls] == [["a", "b"], ["a", "b"]]
    assert all(do_sample and temperature == 0.5 for _, do_sample, temperature in model.calls)
    assert guide.replaced == 1 and guide.sampled == 4

