"""sqlft.sql.split: the one statement splitter, on sqlglot's tokenizer."""

from sqlft.sql.split import first_statement, read_tokens, scan, split_statements


def test_split_statements_follows_sqlglots_tokens():
    script = ("CREATE TABLE \"a;b\" (x TEXT DEFAULT 'p;q'); -- c; d\nCREATE TABLE c (y INT) /* e; f */;\n"
              "INSERT INTO c VALUES (1);;\n  SELECT 'x;' AS s")
    assert split_statements(script) == [
        "CREATE TABLE \"a;b\" (x TEXT DEFAULT 'p;q');", "-- c; d\nCREATE TABLE c (y INT) /* e; f */;",
        "INSERT INTO c VALUES (1);", "SELECT 'x;' AS s"]
    assert split_statements("SELECT 'open; quote") == ["SELECT 'open;", "quote;"]  # unreadable: every ';'
    assert split_statements("  ;\n") == []


def test_the_dialect_decides_what_quotes():
    assert split_statements("SELECT $$a;b$$; SELECT E'it\\'s;'", "postgres") == [
        "SELECT $$a;b$$;", "SELECT E'it\\'s;'"]
    assert split_statements("SELECT [a;b], `c;d` FROM t; SELECT 2", "sqlite") == [
        "SELECT [a;b], `c;d` FROM t;", "SELECT 2"]


def test_scan_keeps_offsets_tokens_and_the_unreadable_rest():
    script = "SELECT 1; -- note\nSELECT 'open; x"
    statements, complete = scan(script)
    assert not complete
    assert [s.text for s in statements] == ["SELECT 1", " -- note\nSELECT 'open; x"]
    assert [s.terminated for s in statements] == [True, False]
    assert [t.text for t in statements[1].tokens] == ["SELECT"]  # what was read before the open quote
    assert script[statements[0].end] == ";"


def test_first_statement():
    assert first_statement("SELECT 'a;b'; SELECT 2", "sqlite") == ("SELECT 'a;b'", " SELECT 2")
    assert first_statement("SELECT 1 /* ; */", "sqlite") == ("SELECT 1 /* ; */", "")
    assert first_statement("SELECT 'open; x", "sqlite") == ("SELECT 'open; x", "")


def test_read_tokens_can_read_past_command_words():
    """EXPLAIN, SHOW, ... make the rest of a statement one string token to a parser; prose starts with them too."""
    assert [t.text for t in read_tokens("explain it. Done", "sqlite")[0]] == ["explain", "it. Done"]
    assert [t.text for t in read_tokens("explain it. Done", "sqlite", commands=False)[0]] == [
        "explain", "it", ".", "Done"]
