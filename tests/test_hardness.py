"""Spider hardness of known queries, each derived by hand from Spider's evaluation.py rules.

The rules (Evaluator.eval_hardness): comp1 = WHERE + GROUP BY + ORDER BY + LIMIT (1 each) + joined tables
+ 'or' tokens + LIKE conditions; comp2 = subqueries used as condition values + a top INTERSECT/UNION/EXCEPT;
others = [aggregates > 1] + [select items > 1] + [WHERE conditions > 1] + [GROUP BY columns > 1].
easy: comp1 <= 1, others == 0, comp2 == 0. medium: (others <= 2, comp1 <= 1, comp2 == 0) or
(comp1 <= 2, others < 2, comp2 == 0). hard: (others > 2, comp1 <= 2, comp2 == 0) or (2 < comp1 <= 3,
others <= 2, comp2 == 0) or (comp1 <= 1, others == 0, comp2 <= 1). Otherwise extra.
Queries are lines of ../shared/data/spider_train/spider_train.jsonl (Spider train), copied verbatim.
"""

import pytest

from sqlft.sql.hardness import count_component1, count_component2, count_others, hardness
from sqlft.sql.dialect import parse_sql

SPIDER = [
    # line 1: WHERE -> comp1 1; one aggregate, one item, one condition -> others 0.
    ("SELECT count(*) FROM head WHERE age  >  56", (1, 0, 0), "easy"),
    # line 2: ORDER BY -> comp1 1; three select items -> others 1.
    ("SELECT name ,  born_state ,  age FROM head ORDER BY age", (1, 0, 1), "medium"),
    # line 4: no clauses; two aggregates (+1) and two items (+1) -> others 2.
    ("SELECT max(budget_in_billions) ,  min(budget_in_billions) FROM department", (0, 0, 2), "medium"),
    # line 5: BETWEEN's AND belongs to the condition: one WHERE condition.
    ("SELECT avg(num_employees) FROM department WHERE ranking BETWEEN 10 AND 15", (1, 0, 0), "easy"),
    # line 9: GROUP BY + ORDER BY + LIMIT -> comp1 3; count(*) in ORDER BY is the only aggregate.
    ("SELECT creation FROM department GROUP BY creation ORDER BY count(*) DESC LIMIT 1", (3, 0, 0), "hard"),
    # line 53: WHERE + one 'or' -> comp1 2; two conditions -> others 1.
    ("SELECT Official_Name FROM city WHERE Population  >  1500 OR Population  <  500", (2, 0, 1), "medium"),
    # line 51: only the left query's WHERE counts; INTERSECT -> comp2 1.
    ("SELECT Status FROM city WHERE Population  >  1500 INTERSECT SELECT Status FROM city WHERE Population  <  500",
     (1, 1, 0), "hard"),
    # line 49: NOT IN (subquery) -> comp2 1; the NOT counts as one "aggregate" (not_op), not more than one.
    ("SELECT Official_Name FROM city WHERE City_ID NOT IN (SELECT Host_city_ID FROM farm_competition)",
     (1, 1, 0), "hard"),
    # line 536: as above but two select items -> others 1: no longer hard.
    ('SELECT fname ,  major FROM Student WHERE StuID NOT IN (SELECT StuID FROM Has_allergy WHERE Allergy  =  "Soy")',
     (1, 1, 1), "extra"),
    # line 3416: WHERE + NOT LIKE -> comp1 2.
    ("SELECT hire_date FROM employees WHERE first_name NOT LIKE '%M%'", (2, 0, 0), "medium"),
    # line 283: WHERE + 'or' + two LIKEs -> comp1 4; two conditions -> others 1.
    ("SELECT name FROM user_profiles WHERE email LIKE '%superstar%' OR email LIKE '%edu%'", (4, 0, 1), "extra"),
    # line 1403: GROUP BY -> comp1 1; three items (+1), two GROUP BY columns (+1) -> others 2.
    ("SELECT count(*) ,  semester ,  YEAR FROM SECTION GROUP BY semester ,  YEAR", (1, 0, 2), "medium"),
    # line 1907: GROUP BY + two joins + 'or' in HAVING -> comp1 4.
    ("SELECT T2.school_name FROM budget AS T1 JOIN school AS T2 ON T1.school_id  =  T2.school_id JOIN endowment AS "
     "T3 ON T2.school_id  =  T3.school_id GROUP BY T2.school_name HAVING sum(T1.budgeted)  >  100 OR "
     "sum(T3.amount)  >  10", (4, 0, 0), "extra"),
    # line 100: UNION -> comp2 1, nothing else.
    ("SELECT student_id FROM student_course_registrations UNION SELECT student_id FROM student_course_attendance",
     (0, 1, 0), "hard"),
    # line 1909: a FROM subquery is a table unit, not a nested query; its clauses are not counted.
    ("SELECT count(*) FROM (SELECT * FROM endowment WHERE amount  >  8.5 GROUP BY school_id HAVING count(*)  >  1)",
     (0, 0, 0), "easy"),
    # line 4453: WHERE + one join -> comp1 2.
    ("SELECT T2.friend FROM Person AS T1 JOIN PersonFriend AS T2 ON T1.name  =  T2.name WHERE T1.name  =  'Bob'",
     (2, 0, 0), "medium"),
    # line 3254: GROUP BY + ORDER BY + LIMIT + three joins -> comp1 6.
    ("SELECT T4.dept_name FROM CLASS AS T1 JOIN enroll AS T2 ON T1.class_code  =  T2.class_code JOIN course AS T3 ON "
     "T1.crs_code  =  T3.crs_code JOIN department AS T4 ON T3.dept_code  =  T4.dept_code GROUP BY T3.dept_code "
     "ORDER BY count(*) DESC LIMIT 1", (6, 0, 0), "extra"),
]


@pytest.mark.parametrize("sql, counts, level", SPIDER)
def test_spider_queries(sql, counts, level):
    tree = parse_sql(sql, "sqlite").tree
    assert (count_component1(tree), count_component2(tree), count_others(tree)) == counts
    assert hardness(sql) == level


def test_having_connectors_count_as_aggregates():
    # Spider passes HAVING unsliced to count_agg: its 'and' token passes `unit[0] != 0`, so with the select's
    # count(*) there are "two aggregates" (others 1) and the query is medium, not easy.
    assert hardness("SELECT count(*) FROM t GROUP BY a HAVING min(b) > 1 AND max(b) < 9") == "medium"
    assert hardness("SELECT count(*) FROM t GROUP BY a HAVING min(b) > 1") == "easy"


def test_is_not_null_is_not_a_negated_condition():
    # In `x IS NOT NULL` Spider's parser reads NOT as part of the value, so not_op stays False.
    assert count_others(parse_sql("SELECT a FROM t WHERE b IS NOT NULL", "sqlite").tree) == 0


def test_unparseable_sql_has_no_level():
    assert hardness("SELEC a FROM") == ""


def test_other_dialects():
    assert hardness("SELECT name FROM author WHERE name ILIKE '%a%'", "postgres") == "medium"  # WHERE + LIKE
