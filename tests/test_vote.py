"""sqlft/sql/vote.py: voting over executed results picks the majority result, and the greedy answer on a tie."""

from sqlft.sql.duckdb_sandbox import DuckdbSandbox
from sqlft.sql.vote import vote

SETUP = """CREATE TABLE singer (singer_id INT, name TEXT, country TEXT, age INT);
INSERT INTO singer VALUES (1, 'Joe', 'France', 52), (2, 'Ann', 'Peru', 32), (3, 'Tom', 'France', 41);"""

FRANCE = "SELECT name FROM singer WHERE country = 'France'"
FRANCE_TOO = "SELECT s.name FROM singer AS s WHERE s.age > 40"  # other SQL, same rows
FRANCE_REORDERED = "SELECT name FROM singer WHERE country = 'France' ORDER BY name DESC"
PERU = "SELECT name FROM singer WHERE country = 'Peru'"
BROKEN = "SELECT nickname FROM singer"


def _run(box: DuckdbSandbox):
    def run(sql: str):
        result = box.execute(sql)
        return [result] if result.status == "ok" else None
    return run


def test_majority_result_wins_over_the_greedy_answer():
    with DuckdbSandbox.from_sql(SETUP) as box:
        chosen = vote([PERU, FRANCE, BROKEN, FRANCE_TOO, FRANCE_REORDERED], _run(box))
    assert chosen.index == 1 and chosen.changed  # three answers give Joe and Tom (in any order); one gives Ann
    assert (chosen.candidates, chosen.ran, chosen.votes) == (5, 4, 3)


def test_greedy_answer_wins_a_tie_and_stays_when_nothing_runs():
    with DuckdbSandbox.from_sql(SETUP) as box:
        tie = vote([PERU, FRANCE, "SELECT name FROM singer WHERE age < 40", FRANCE_TOO], _run(box))
        assert (tie.index, tie.changed, tie.votes) == (0, False, 2)
        # the greedy answer does not run: the earliest of the tied groups wins
        no_greedy = vote([BROKEN, PERU, FRANCE], _run(box))
        assert (no_greedy.index, no_greedy.changed, no_greedy.ran) == (1, True, 2)
        nothing = vote([BROKEN, "", "DROP TABLE singer"], _run(box))
        assert (nothing.index, nothing.ran, nothing.votes, nothing.changed) == (0, 0, 0, False)
        assert box.execute("SELECT count(*) FROM singer").rows == [(3,)]


def test_all_instances_must_agree_and_same_sql_runs_once():
    calls = []
    with DuckdbSandbox.from_sql(SETUP) as a, DuckdbSandbox.from_sql(SETUP.replace("'Tom', 'France', 41", "'Tom', 'Peru', 41")) as b:
        def run(sql):
            calls.append(sql)
            results = [a.execute(sql), b.execute(sql)]
            return results if all(r.status == "ok" for r in results) else None
        # FRANCE and FRANCE_TOO agree on instance a only: on b Tom is from Peru but still over 40
        chosen = vote([FRANCE_TOO, FRANCE, FRANCE], run)
    assert (chosen.index, chosen.votes) == (1, 2)
    assert calls == [FRANCE_TOO, FRANCE]


NOBODY = "SELECT name FROM singer WHERE country = 'Chile'"  # runs, no rows
NOBODY_TOO = "SELECT name FROM singer WHERE age > 100"


def test_answers_without_rows_do_not_vote_while_another_answer_has_rows():
    with DuckdbSandbox.from_sql(SETUP) as box:
        # two answers agree on "nobody"; the one with rows wins (the greedy answer is among the empty ones)
        chosen = vote([NOBODY, NOBODY_TOO, PERU], _run(box))
        assert (chosen.index, chosen.votes, chosen.ran, chosen.empty, chosen.changed) == (2, 1, 3, 2, True)
        # every vote counts when asked to (the rule as the issue first stated it)
        plain = vote([NOBODY, NOBODY_TOO, PERU], _run(box), skip_empty=False)
        assert (plain.index, plain.votes, plain.empty) == (0, 2, 0)
        # only empty results ran: they vote as before, the greedy answer wins the tie of equal results
        only_empty = vote([NOBODY, NOBODY_TOO, BROKEN], _run(box))
        assert (only_empty.index, only_empty.votes, only_empty.empty) == (0, 2, 0)
