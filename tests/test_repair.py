"""sqlft/sql/repair.py: answers that name tables or columns the schema lacks are rewritten to the schema's names, rule by
rule; an answer whose names all resolve, or that no rule can place, is returned as written. The rewritten SQL is
run on a real DuckDB database built from the same schema, so each case checks that the repair runs."""

import pytest

from sqlft.sql.repair import closest, repair_sql, schema_names
from sqlft.sql.duckdb_sandbox import DuckdbSandbox

# Spider's party_host database, as its CREATE TABLE text reads (apartment_bookings for the plural rule)
DDL = """CREATE TABLE party (Party_ID INT, Party_Theme TEXT, Location TEXT, First_year TEXT, Last_year TEXT,
  Number_of_hosts INT, PRIMARY KEY (Party_ID));
CREATE TABLE host (Host_ID INT, Name TEXT, Nationality TEXT, Age TEXT, PRIMARY KEY (Host_ID));
CREATE TABLE party_host (Party_ID INT, Host_ID INT, Is_Main_in_Charge BOOLEAN, PRIMARY KEY (Party_ID, Host_ID),
  FOREIGN KEY (Host_ID) REFERENCES host(Host_ID), FOREIGN KEY (Party_ID) REFERENCES party(Party_ID));
CREATE TABLE apartment_bookings (apt_booking_id INT, booking_status_code TEXT, booking_start_date TEXT);"""
NAMES = schema_names(DDL, "sqlite")


def fix(sql: str) -> str:
    return repair_sql(sql, NAMES, "sqlite")


@pytest.fixture(scope="module")
def box():
    with DuckdbSandbox.from_sql([s.strip() for s in DDL.split(";") if s.strip()]) as sandbox:
        yield sandbox


@pytest.mark.parametrize("written, repaired", [
    # rule 1: a table the schema lacks -> the closest one (plural, words, spelling)
    ("SELECT count(*) FROM apartment_booking", "SELECT COUNT(*) FROM apartment_bookings"),
    ("SELECT count(*) FROM hosts", "SELECT COUNT(*) FROM host"),
    ("SELECT count(*) FROM apartment_bokings", "SELECT COUNT(*) FROM apartment_bookings"),
    # rule 2: a one-table SELECT naming another table's columns -> that table, the alias kept
    ("SELECT Name, Nationality FROM party ORDER BY Age DESC LIMIT 1",
     "SELECT Name, Nationality FROM host ORDER BY Age DESC LIMIT 1"),
    ("SELECT T1.Name FROM party AS T1", "SELECT T1.Name FROM host AS T1"),
    # rule 3: a join condition on a column one side lacks -> the foreign key between the two tables
    ("SELECT T1.Name FROM host AS T1 JOIN party_host AS T2 ON T1.Name = T2.Host_name",
     "SELECT T1.Name FROM host AS T1 JOIN party_host AS T2 ON T1.Host_ID = T2.Host_ID"),
    # rule 4: a column its table lacks -> the one other table of the SELECT that has it ...
    ("SELECT T2.Name FROM party_host AS T1 JOIN host AS T2 ON T1.Host_ID = T2.Host_ID WHERE T1.Nationality = 'US'",
     "SELECT T2.Name FROM party_host AS T1 JOIN host AS T2 ON T1.Host_ID = T2.Host_ID WHERE T2.Nationality = 'US'"),
    # ... else the closest column of its table
    ("SELECT start_date FROM apartment_bookings", "SELECT booking_start_date FROM apartment_bookings"),
    ("SELECT Theme FROM party", "SELECT Party_Theme FROM party"),
])
def test_each_rule_places_the_name_and_the_answer_runs(box, written, repaired):
    assert box.execute(written).status in ("error", "rejected")
    assert fix(written) == repaired
    assert box.execute(repaired).status == "ok", box.execute(repaired).error


@pytest.mark.parametrize("sql", [
    "SELECT Name FROM host WHERE Age > 30",  # every name resolves
    "SELECT First_year FROM party WHERE Party_Theme = \"Spring\"",  # a double-quoted string, as SQLite reads it
    "SELECT Location, count(*) AS n FROM party GROUP BY Location ORDER BY n",  # ORDER BY a SELECT alias
    "WITH t AS (SELECT Name FROM host) SELECT Name FROM t",  # a CTE is a table of the statement
    "SELECT wingspan FROM eagles",  # no table is close: nothing is invented
    "SELECT Name FROM host WHERE (",  # does not parse: as written
    "",
])
def test_names_that_resolve_or_cannot_be_placed_are_left_as_written(sql):
    assert fix(sql) == sql


def test_a_join_is_never_turned_into_a_comparison_of_a_column_with_itself():
    # party has no Host_ID; re-qualifying T1.Host_ID to T2 would give T2.Host_ID = T2.Host_ID, a join of
    # everything to everything. Rule 3 finds no link between party and host, so the answer stays as it fails.
    sql = "SELECT T2.Name FROM party AS T1 JOIN host AS T2 ON T1.Host_ID = T2.Host_ID"
    assert "T2.Host_ID = T2.Host_ID" not in fix(sql)


def test_closest_prefers_case_and_plural_then_words_then_spelling():
    options = ["Apartment_Bookings", "Apartment_Buildings", "Guests"]
    assert closest("apartment_bookings", options, 0.6) == "Apartment_Bookings"
    assert closest("guest", options, 0.6) == "Guests"
    assert closest("bookings", options, 0.6) == "Apartment_Bookings"  # the one name holding the word
    assert closest("apartment", options, 0.6) is None or closest("apartment", options, 0.9) is None
    assert closest("zebra", options, 0.6) is None


def test_schema_without_tables_repairs_nothing():
    assert repair_sql("SELECT x FROM y", schema_names("", "sqlite"), "sqlite") == "SELECT x FROM y"
