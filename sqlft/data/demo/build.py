"""Authors sqlft's demo text-to-SQL set: questions with gold DuckDB SQL over the seven defog-data databases.

Run `python -m sqlft.data.demo.build` after editing the entries below: every gold query is executed (it must
succeed and return rows), contexts are rebuilt with `sqlft.sql.database.schema_ddl`, and train.jsonl / eval.jsonl
are rewritten deterministically. The jsonl files are committed; sqlft reads them without running this.
"""

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import sqlglot
from sqlglot import exp

from sqlft.sql.database import prepare_database, schema_ddl

HERE = Path(__file__).parent
EVAL_SIZE = 40

# Each entry: (question, gold SQL in DuckDB's dialect, difficulty, category, tables shown in the context).
# The tables are those the query reads, sometimes plus one related table so the model learns to pick.
# Difficulty: easy = one table, one idea; medium = one or two joins, GROUP BY/HAVING, top-k;
# hard = subqueries, self-joins, three or more tables, windows.
ACADEMIC = [
    ("How many authors are there?",
     "SELECT COUNT(*) FROM author", "easy", "count", ["author"]),
    ("What is the homepage of Noam Shazeer?",
     "SELECT homepage FROM author WHERE name = 'Noam Shazeer'", "easy", "filter", ["author"]),
    ("List the titles of the publications from 2021.",
     "SELECT title FROM publication WHERE year = 2021", "easy", "filter", ["publication"]),
    ("How many publications were published in 2020?",
     "SELECT COUNT(*) FROM publication WHERE year = 2020", "easy", "count", ["publication"]),
    ("Which publication has the most citations?",
     "SELECT title FROM publication ORDER BY citation_num DESC LIMIT 1", "easy", "order_limit", ["publication"]),
    ("What is the total number of citations over all publications?",
     "SELECT SUM(citation_num) FROM publication", "easy", "aggregate", ["publication"]),
    ("Which organizations are in Europe?",
     "SELECT name FROM organization WHERE continent = 'Europe'", "easy", "filter", ["organization", "author"]),
    ("How many organizations are there on each continent?",
     "SELECT continent, COUNT(*) FROM organization GROUP BY continent", "easy", "group_by", ["organization"]),
    ("List the names of all conferences.",
     "SELECT name FROM conference", "easy", "filter", ["conference"]),
    ("What is the name of the journal whose homepage is www.nature.com?",
     "SELECT name FROM journal WHERE homepage = 'www.nature.com'", "easy", "filter", ["journal"]),
    ("What is the average number of references per publication?",
     "SELECT AVG(reference_num) FROM publication", "easy", "aggregate", ["publication"]),
    ("Which publications have more than 5 references?",
     "SELECT title FROM publication WHERE reference_num > 5", "easy", "filter", ["publication"]),
    ("Which journals have 'Journal' in their name?",
     "SELECT name FROM journal WHERE name LIKE '%Journal%'", "easy", "string", ["journal"]),
    ("How many keywords are there?",
     "SELECT COUNT(*) FROM keyword", "easy", "count", ["keyword", "publication_keyword"]),
    ("Which authors have no homepage?",
     "SELECT name FROM author WHERE homepage IS NULL", "easy", "filter", ["author"]),
    ("Which conference has the homepage www.icml.com?",
     "SELECT name FROM conference WHERE homepage = 'www.icml.com'", "easy", "filter", ["conference"]),
    ("What is the average citation count of publications from 2021?",
     "SELECT AVG(citation_num) FROM publication WHERE year = 2021", "easy", "aggregate", ["publication"]),
    ("Which publications were published before 2021?",
     "SELECT title FROM publication WHERE year < 2021", "easy", "date", ["publication"]),
    ("Which organization does Ashish Vaswani belong to?",
     "SELECT o.name FROM author AS a JOIN organization AS o ON a.oid = o.oid WHERE a.name = 'Ashish Vaswani'",
     "medium", "join", ["author", "organization"]),
    ("List the titles of the publications written by Ashish Vaswani.",
     "SELECT p.title FROM publication AS p JOIN writes AS w ON p.pid = w.pid JOIN author AS a ON w.aid = a.aid "
     "WHERE a.name = 'Ashish Vaswani'", "medium", "join", ["publication", "writes", "author"]),
    ("How many publications has each author written?",
     "SELECT a.name, COUNT(w.pid) FROM author AS a JOIN writes AS w ON a.aid = w.aid GROUP BY a.name",
     "medium", "group_by", ["author", "writes"]),
    ("Which conference published 'Data Mining Techniques'?",
     "SELECT c.name FROM publication AS p JOIN conference AS c ON p.cid = c.cid "
     "WHERE p.title = 'Data Mining Techniques'", "medium", "join", ["publication", "conference"]),
    ("In which journal did 'Attention is all you need' appear?",
     "SELECT j.name FROM publication AS p JOIN journal AS j ON p.jid = j.jid "
     "WHERE p.title = 'Attention is all you need'", "medium", "join", ["publication", "journal"]),
    ("How many publications appeared in each journal?",
     "SELECT j.name, COUNT(*) FROM publication AS p JOIN journal AS j ON p.jid = j.jid GROUP BY j.name",
     "medium", "group_by", ["publication", "journal"]),
    ("How many publications were published each year? Order by year.",
     "SELECT year, COUNT(*) FROM publication GROUP BY year ORDER BY year", "medium", "group_by", ["publication"]),
    ("List the authors in the Computer Science domain.",
     "SELECT a.name FROM author AS a JOIN domain_author AS da ON a.aid = da.aid JOIN domain AS d "
     "ON da.did = d.did WHERE d.name = 'Computer Science'", "medium", "join", ["author", "domain_author", "domain"]),
    ("Which keywords are attached to the publication 'The Effects of Climate Change on Agriculture'?",
     "SELECT k.keyword FROM keyword AS k JOIN publication_keyword AS pk ON k.kid = pk.kid JOIN publication AS p "
     "ON pk.pid = p.pid WHERE p.title = 'The Effects of Climate Change on Agriculture'",
     "medium", "join", ["keyword", "publication_keyword", "publication"]),
    ("Which author has written the most publications?",
     "SELECT a.name FROM author AS a JOIN writes AS w ON a.aid = w.aid GROUP BY a.name "
     "ORDER BY COUNT(*) DESC LIMIT 1", "medium", "order_limit", ["author", "writes"]),
    ("What is the total citation count of the publications in the ICML conference?",
     "SELECT SUM(p.citation_num) FROM publication AS p JOIN conference AS c ON p.cid = c.cid "
     "WHERE c.name = 'ICML'", "medium", "aggregate", ["publication", "conference"]),
    ("Which authors have written more than one publication?",
     "SELECT a.name FROM author AS a JOIN writes AS w ON a.aid = w.aid GROUP BY a.name HAVING COUNT(*) > 1",
     "medium", "group_by", ["author", "writes"]),
    ("Which domains does Noam Shazeer work in?",
     "SELECT d.name FROM domain AS d JOIN domain_author AS da ON d.did = da.did JOIN author AS a "
     "ON da.aid = a.aid WHERE a.name = 'Noam Shazeer'", "medium", "join", ["domain", "domain_author", "author"]),
    ("List the titles of the publications in the Machine Learning domain.",
     "SELECT p.title FROM publication AS p JOIN domain_publication AS dp ON p.pid = dp.pid JOIN domain AS d "
     "ON dp.did = d.did WHERE d.name = 'Machine Learning'",
     "medium", "join", ["publication", "domain_publication", "domain"]),
    ("For each continent, how many authors belong to an organization there?",
     "SELECT o.continent, COUNT(*) FROM author AS a JOIN organization AS o ON a.oid = o.oid "
     "GROUP BY o.continent", "medium", "group_by", ["author", "organization"]),
    ("How many authors are in each domain?",
     "SELECT d.name, COUNT(da.aid) FROM domain AS d JOIN domain_author AS da ON d.did = da.did GROUP BY d.name",
     "medium", "group_by", ["domain", "domain_author"]),
    ("How many distinct publications were written by authors from organizations in North America?",
     "SELECT COUNT(DISTINCT w.pid) FROM writes AS w JOIN author AS a ON w.aid = a.aid JOIN organization AS o "
     "ON a.oid = o.oid WHERE o.continent = 'North America'", "hard", "join", ["writes", "author", "organization"]),
    ("Which publications have more citations than the average publication?",
     "SELECT title FROM publication WHERE citation_num > (SELECT AVG(citation_num) FROM publication)",
     "hard", "subquery", ["publication"]),
    ("Which authors have not written any publication?",
     "SELECT name FROM author WHERE aid NOT IN (SELECT aid FROM writes)", "hard", "subquery", ["author", "writes"]),
    ("For every publication, how many times is it cited in the cite table? Include publications never cited.",
     "SELECT p.title, COUNT(c.citing) FROM publication AS p LEFT JOIN cite AS c ON p.pid = c.cited "
     "GROUP BY p.title", "hard", "group_by", ["publication", "cite"]),
    ("Which publications are cited by 'Attention is all you need'?",
     "SELECT p2.title FROM publication AS p1 JOIN cite AS c ON c.citing = p1.pid JOIN publication AS p2 "
     "ON c.cited = p2.pid WHERE p1.title = 'Attention is all you need'", "hard", "join", ["publication", "cite"]),
    ("Which journal has the highest total number of citations over its publications?",
     "SELECT j.name FROM journal AS j JOIN publication AS p ON j.jid = p.jid GROUP BY j.name "
     "ORDER BY SUM(p.citation_num) DESC LIMIT 1", "hard", "order_limit", ["journal", "publication"]),
    ("Which authors have co-written a publication with Ashish Vaswani?",
     "SELECT DISTINCT a2.name FROM author AS a1 JOIN writes AS w1 ON a1.aid = w1.aid JOIN writes AS w2 "
     "ON w1.pid = w2.pid JOIN author AS a2 ON w2.aid = a2.aid "
     "WHERE a1.name = 'Ashish Vaswani' AND a2.name <> 'Ashish Vaswani'", "hard", "join", ["author", "writes"]),
    ("List each publication title with its number of authors, most authors first, then by title.",
     "SELECT p.title, COUNT(w.aid) AS num_authors FROM publication AS p JOIN writes AS w ON p.pid = w.pid "
     "GROUP BY p.title ORDER BY num_authors DESC, p.title", "hard", "group_by", ["publication", "writes"]),
]

ADVISING = [
    ("How many courses does the Computer Science department offer?",
     "SELECT COUNT(*) FROM course WHERE department = 'Computer Science'", "easy", "count", ["course"]),
    ("What is the course number of Advanced Calculus?",
     "SELECT number FROM course WHERE name = 'Advanced Calculus'", "easy", "filter", ["course"]),
    ("Which courses have a lab?",
     "SELECT name FROM course WHERE has_lab = TRUE", "easy", "filter", ["course"]),
    ("What is the average clarity score of all courses?",
     "SELECT AVG(clarity_score) FROM course", "easy", "aggregate", ["course"]),
    ("Which course has the most students enrolled?",
     "SELECT name FROM course ORDER BY num_enrolled DESC LIMIT 1", "easy", "order_limit", ["course"]),
    ("List the names of all instructors.",
     "SELECT name FROM instructor", "easy", "filter", ["instructor", "offering_instructor"]),
    ("What is the uniqname of Gilbert Strang?",
     "SELECT uniqname FROM instructor WHERE name = 'Gilbert Strang'", "easy", "filter", ["instructor"]),
    ("How many students are there?",
     "SELECT COUNT(*) FROM student", "easy", "count", ["student"]),
    ("What is the highest GPA of any student?",
     "SELECT MAX(total_gpa) FROM student", "easy", "aggregate", ["student"]),
    ("Which students entered as freshmen and have a GPA above 3.4? Give first and last names.",
     "SELECT firstname, lastname FROM student WHERE entered_as = 'Freshman' AND total_gpa > 3.4",
     "easy", "filter", ["student"]),
    ("Which programs belong to the college of Arts and Sciences?",
     "SELECT name FROM program WHERE college = 'Arts and Sciences'", "easy", "filter", ["program"]),
    ("Which students were admitted in 2019?",
     "SELECT firstname, lastname FROM student WHERE EXTRACT(YEAR FROM admit_term) = 2019",
     "easy", "date", ["student"]),
    ("How many courses does each department offer?",
     "SELECT department, COUNT(*) FROM course GROUP BY department", "easy", "group_by", ["course"]),
    ("Which courses have both projects and exams?",
     "SELECT name FROM course WHERE has_projects = TRUE AND has_exams = TRUE", "easy", "filter", ["course"]),
    ("How many semesters are there in 2021?",
     "SELECT COUNT(*) FROM semester WHERE year = 2021", "easy", "count", ["semester"]),
    ("How many course records have the grade A?",
     "SELECT COUNT(*) FROM student_record WHERE grade = 'A'", "easy", "count", ["student_record"]),
    ("Which student records were taken online? Show the student and course ids.",
     "SELECT student_id, course_id FROM student_record WHERE how = 'online'", "easy", "filter", ["student_record"]),
    ("What is the average score given in instructor comments?",
     "SELECT AVG(score) FROM comment_instructor", "easy", "aggregate", ["comment_instructor", "instructor"]),
    ("Which course id has the highest pop quiz tag count?",
     "SELECT course_id FROM course_tags_count ORDER BY pop_quiz DESC LIMIT 1",
     "easy", "order_limit", ["course_tags_count"]),
    ("Which courses have an easiness score of at least 3?",
     "SELECT name FROM course WHERE easiness_score >= 3", "easy", "filter", ["course"]),
    ("What is the average GPA of students for each degree?",
     "SELECT degree, AVG(total_gpa) FROM student GROUP BY degree", "easy", "group_by", ["student"]),
    ("Which course offerings start at 8 AM?",
     "SELECT offering_id FROM course_offering WHERE start_time = TIME '08:00:00'",
     "easy", "date", ["course_offering"]),
    ("Which students are expected to graduate in 2022? Give their last names.",
     "SELECT lastname FROM student WHERE EXTRACT(YEAR FROM predicted_graduation_semester) = 2022",
     "easy", "date", ["student"]),
    ("Which instructors teach offering 3?",
     "SELECT i.name FROM instructor AS i JOIN offering_instructor AS oi ON i.instructor_id = oi.instructor_id "
     "WHERE oi.offering_id = 3", "medium", "join", ["instructor", "offering_instructor"]),
    ("What grades did the student John Smith receive?",
     "SELECT sr.grade FROM student AS s JOIN student_record AS sr ON s.student_id = sr.student_id "
     "WHERE s.firstname = 'John' AND s.lastname = 'Smith'", "medium", "join", ["student", "student_record"]),
    ("Which program is David Johnson enrolled in?",
     "SELECT p.name FROM student AS s JOIN program AS p ON s.program_id = p.program_id "
     "WHERE s.firstname = 'David' AND s.lastname = 'Johnson'", "medium", "join", ["student", "program"]),
    ("How many students are in each program? Show program names.",
     "SELECT p.name, COUNT(*) FROM program AS p JOIN student AS s ON p.program_id = s.program_id GROUP BY p.name",
     "medium", "group_by", ["program", "student"]),
    ("What is the minimum credit requirement of the Physics program?",
     "SELECT pr.min_credit FROM program_requirement AS pr JOIN program AS p ON pr.program_id = p.program_id "
     "WHERE p.name = 'Physics'", "medium", "join", ["program_requirement", "program"]),
    ("Which courses are core courses in the Computer Science program?",
     "SELECT c.name FROM course AS c JOIN program_course AS pc ON c.course_id = pc.course_id JOIN program AS p "
     "ON pc.program_id = p.program_id WHERE p.name = 'Computer Science' AND pc.category = 'Core'",
     "medium", "join", ["course", "program_course", "program"]),
    ("What comment was left for the instructor Jane Doe?",
     "SELECT ci.comment_text FROM comment_instructor AS ci JOIN instructor AS i "
     "ON ci.instructor_id = i.instructor_id WHERE i.name = 'Jane Doe'",
     "medium", "join", ["comment_instructor", "instructor"]),
    ("Which course offerings have a final exam, and which textbook does each use?",
     "SELECT offering_id, textbook FROM course_offering WHERE has_final_exam = TRUE",
     "medium", "filter", ["course_offering"]),
    ("How many course offerings are there in each semester? Show the semester name and year.",
     "SELECT s.semester, s.year, COUNT(*) FROM course_offering AS co JOIN semester AS s "
     "ON co.semester = s.semester_id GROUP BY s.semester, s.year",
     "medium", "group_by", ["course_offering", "semester"]),
    ("What is the total workload of the courses in the Computer Science program?",
     "SELECT SUM(pc.workload) FROM program_course AS pc JOIN program AS p ON pc.program_id = p.program_id "
     "WHERE p.name = 'Computer Science'", "medium", "aggregate", ["program_course", "program"]),
    ("How many offerings does each instructor teach? Show instructor names.",
     "SELECT i.name, COUNT(oi.offering_id) FROM instructor AS i JOIN offering_instructor AS oi "
     "ON i.instructor_id = oi.instructor_id GROUP BY i.name",
     "medium", "group_by", ["instructor", "offering_instructor"]),
    ("Which areas does the course Distributed Databases belong to?",
     "SELECT a.area FROM area AS a JOIN course AS c ON a.course_id = c.course_id "
     "WHERE c.name = 'Distributed Databases'", "medium", "join", ["area", "course"]),
    ("How many student records are there for each year? Use the semester table for the year.",
     "SELECT s.year, COUNT(*) FROM student_record AS sr JOIN semester AS s ON sr.semester = s.semester_id "
     "GROUP BY s.year", "medium", "group_by", ["student_record", "semester"]),
    ("How many months are there between each student's admission and predicted graduation? "
     "Show first names.",
     "SELECT firstname, date_diff('month', admit_term, predicted_graduation_semester) FROM student",
     "medium", "date", ["student"]),
    ("Which courses are prerequisites for Introduction to Physics?",
     "SELECT pre.name FROM course_prerequisite AS cp JOIN course AS c ON cp.course_id = c.course_id "
     "JOIN course AS pre ON cp.pre_course_id = pre.course_id WHERE c.name = 'Introduction to Physics'",
     "hard", "join", ["course_prerequisite", "course"]),
    ("Which students have a GPA above the average GPA of all students?",
     "SELECT firstname, lastname FROM student WHERE total_gpa > (SELECT AVG(total_gpa) FROM student)",
     "hard", "subquery", ["student"]),
    ("Which instructors have not received any comments?",
     "SELECT name FROM instructor WHERE instructor_id NOT IN (SELECT instructor_id FROM comment_instructor)",
     "hard", "subquery", ["instructor", "comment_instructor"]),
    ("Which student has taken the most courses? Give the first and last name.",
     "SELECT s.firstname, s.lastname FROM student AS s JOIN student_record AS sr ON s.student_id = sr.student_id "
     "GROUP BY s.firstname, s.lastname ORDER BY COUNT(*) DESC LIMIT 1",
     "hard", "order_limit", ["student", "student_record"]),
]

ATIS = [
    ("How many airlines are there?",
     "SELECT COUNT(*) FROM airline", "easy", "count", ["airline"]),
    ("What is the name of the airline with code DL?",
     "SELECT airline_name FROM airline WHERE airline_code = 'DL'", "easy", "filter", ["airline"]),
    ("Which airports are in California? Give their names.",
     "SELECT airport_name FROM airport WHERE state_code = 'CA'", "easy", "filter", ["airport", "state"]),
    ("What is the minimum connect time at Denver International Airport?",
     "SELECT minimum_connect_time FROM airport WHERE airport_name = 'Denver International Airport'",
     "easy", "filter", ["airport"]),
    ("Which airport has the shortest minimum connect time?",
     "SELECT airport_name FROM airport ORDER BY minimum_connect_time LIMIT 1", "easy", "order_limit", ["airport"]),
    ("How many airports are in each time zone?",
     "SELECT time_zone_code, COUNT(*) FROM airport GROUP BY time_zone_code", "easy", "group_by", ["airport"]),
    ("List the codes of the aircraft made by Airbus.",
     "SELECT aircraft_code FROM aircraft WHERE manufacturer = 'Airbus'", "easy", "filter", ["aircraft"]),
    ("What is the average cruising speed of Boeing aircraft?",
     "SELECT AVG(cruising_speed) FROM aircraft WHERE manufacturer = 'Boeing'", "easy", "aggregate", ["aircraft"]),
    ("Which aircraft has the longest range?",
     "SELECT aircraft_code FROM aircraft ORDER BY range_miles DESC LIMIT 1", "easy", "order_limit", ["aircraft"]),
    ("How many flights depart from ORD?",
     "SELECT COUNT(*) FROM flight WHERE from_airport = 'ORD'", "easy", "count", ["flight"]),
    ("List the flight numbers of the flights from JFK to ORD.",
     "SELECT flight_number FROM flight WHERE from_airport = 'JFK' AND to_airport = 'ORD'",
     "easy", "filter", ["flight"]),
    ("Which flights have at least one stop? Show flight ids and numbers.",
     "SELECT flight_id, flight_number FROM flight WHERE stops > 0", "easy", "filter", ["flight"]),
    ("What is the cheapest one-way fare from ORD to JFK?",
     "SELECT MIN(one_direction_cost) FROM fare WHERE from_airport = 'ORD' AND to_airport = 'JFK'",
     "easy", "aggregate", ["fare"]),
    ("What is the average round-trip cost of fares departing from LAX?",
     "SELECT AVG(round_trip_cost) FROM fare WHERE from_airport = 'LAX'", "easy", "aggregate", ["fare"]),
    ("Which fares require a round trip? Give the fare ids.",
     "SELECT fare_id FROM fare WHERE round_trip_required = 'Yes'", "easy", "filter", ["fare", "fare_basis"]),
    ("What is the name of the time zone with code CST?",
     "SELECT time_zone_name FROM time_zone WHERE time_zone_code = 'CST'", "easy", "filter", ["time_zone"]),
    ("Which cities are in the PST time zone?",
     "SELECT city_name FROM city WHERE time_zone_code = 'PST'", "easy", "filter", ["city"]),
    ("How many cities are in each state? Show the state code.",
     "SELECT state_code, COUNT(*) FROM city GROUP BY state_code", "easy", "group_by", ["city"]),
    ("Which kinds of ground transportation are available at JFK, and what do they cost?",
     "SELECT transport_type, ground_fare FROM ground_service WHERE airport_code = 'JFK'",
     "easy", "filter", ["ground_service"]),
    ("Which ground transportation option at JFK is the cheapest?",
     "SELECT transport_type FROM ground_service WHERE airport_code = 'JFK' ORDER BY ground_fare LIMIT 1",
     "easy", "order_limit", ["ground_service"]),
    ("Which meals are served in the Economy compartment?",
     "SELECT meal_description FROM food_service WHERE compartment = 'Economy'", "easy", "filter", ["food_service"]),
    ("What is the booking class of fare basis code GHI?",
     "SELECT booking_class FROM fare_basis WHERE fare_basis_code = 'GHI'", "easy", "filter", ["fare_basis"]),
    ("Which flights have an elapsed time over 10000?",
     "SELECT flight_id FROM flight WHERE time_elapsed > 10000", "easy", "filter", ["flight"]),
    ("Which flights operate on Wednesdays?",
     "SELECT flight_id FROM flight WHERE flight_days LIKE '%wed%'", "easy", "string", ["flight", "days"]),
    ("Who is the dual carrier airline for the main airline AA?",
     "SELECT dual_airline FROM dual_carrier WHERE main_airline = 'AA'", "easy", "filter", ["dual_carrier"]),
    ("How many distinct airports do flights stop at?",
     "SELECT COUNT(DISTINCT stop_airport) FROM flight_stop", "easy", "count", ["flight_stop"]),
    ("How many hours from GMT is Eastern Standard Time?",
     "SELECT hours_from_gmt FROM time_zone WHERE time_zone_name = 'Eastern Standard Time'",
     "easy", "filter", ["time_zone"]),
    ("Show the departure time of flight 1 as a timestamp. The time is stored in seconds since 1970.",
     "SELECT make_timestamp(departure_time * 1000000) FROM flight WHERE flight_id = 1",
     "medium", "date", ["flight"]),
    ("Which flights depart before 06:00 on 2020-01-01? Departure times are seconds since 1970 (UTC).",
     "SELECT flight_id FROM flight WHERE make_timestamp(departure_time * 1000000) < TIMESTAMP '2020-01-01 06:00:00'",
     "medium", "date", ["flight"]),
    ("What is the name of the airline that operates flight UA456?",
     "SELECT a.airline_name FROM flight AS f JOIN airline AS a ON f.airline_code = a.airline_code "
     "WHERE f.flight_number = 'UA456'", "medium", "join", ["flight", "airline"]),
    ("Which airlines have flights departing from JFK? Give the airline names.",
     "SELECT DISTINCT a.airline_name FROM flight AS f JOIN airline AS a ON f.airline_code = a.airline_code "
     "WHERE f.from_airport = 'JFK'", "medium", "join", ["flight", "airline"]),
    ("What is the name of the airport where flight AS345 arrives?",
     "SELECT ap.airport_name FROM flight AS f JOIN airport AS ap ON f.to_airport = ap.airport_code "
     "WHERE f.flight_number = 'AS345'", "medium", "join", ["flight", "airport"]),
    ("Give the names of the airports where flights make stops.",
     "SELECT DISTINCT a.airport_name FROM flight_stop AS fs JOIN airport AS a ON fs.stop_airport = a.airport_code",
     "medium", "join", ["flight_stop", "airport"]),
    ("How many flights does each airline operate? Show airline codes.",
     "SELECT airline_code, COUNT(*) FROM flight GROUP BY airline_code", "medium", "group_by", ["flight"]),
    ("Which airline operates the most flights? Give the airline name.",
     "SELECT a.airline_name FROM flight AS f JOIN airline AS a ON f.airline_code = a.airline_code "
     "GROUP BY a.airline_name ORDER BY COUNT(*) DESC LIMIT 1", "medium", "order_limit", ["flight", "airline"]),
    ("What is the class type of the fare with the cheapest one-way cost?",
     "SELECT fb.class_type FROM fare AS f JOIN fare_basis AS fb ON f.fare_basis_code = fb.fare_basis_code "
     "ORDER BY f.one_direction_cost LIMIT 1", "medium", "order_limit", ["fare", "fare_basis"]),
    ("What is the average one-way cost of fares for each airline? Show airline names.",
     "SELECT a.airline_name, AVG(f.one_direction_cost) FROM fare AS f JOIN airline AS a "
     "ON f.fare_airline = a.airline_code GROUP BY a.airline_name", "medium", "group_by", ["fare", "airline"]),
    ("What is the one-way cost of the fare for flight 4?",
     "SELECT fa.one_direction_cost FROM flight_fare AS ff JOIN fare AS fa ON ff.fare_id = fa.fare_id "
     "WHERE ff.flight_id = 4", "medium", "join", ["flight_fare", "fare"]),
    ("Which cities have ground transportation costing more than 100? Give city names.",
     "SELECT DISTINCT c.city_name FROM ground_service AS g JOIN city AS c ON g.city_code = c.city_code "
     "WHERE g.ground_fare > 100", "medium", "join", ["ground_service", "city"]),
    ("In which state is the airport LAS? Give the state name.",
     "SELECT s.state_name FROM airport AS a JOIN state AS s ON a.state_code = s.state_code "
     "WHERE a.airport_code = 'LAS'", "medium", "join", ["airport", "state"]),
    ("How many airports are in each time zone? Show time zone names.",
     "SELECT tz.time_zone_name, COUNT(*) FROM airport AS a JOIN time_zone AS tz "
     "ON a.time_zone_code = tz.time_zone_code GROUP BY tz.time_zone_name", "medium", "group_by", ["airport", "time_zone"]),
    ("What meal is served on flight 7?",
     "SELECT fs.meal_description FROM flight AS f JOIN food_service AS fs ON f.meal_code = fs.meal_code "
     "WHERE f.flight_id = 7", "medium", "join", ["flight", "food_service"]),
    ("Which fares cost more than the average one-way fare? Show fare ids and costs.",
     "SELECT fare_id, one_direction_cost FROM fare WHERE one_direction_cost > "
     "(SELECT AVG(one_direction_cost) FROM fare)", "hard", "subquery", ["fare"]),
    ("Which airports have no departing flights? Give the airport codes.",
     "SELECT airport_code FROM airport WHERE airport_code NOT IN (SELECT from_airport FROM flight)",
     "hard", "subquery", ["airport", "flight"]),
    ("Who manufactures the aircraft used on flight 5?",
     "SELECT ac.manufacturer FROM flight AS f JOIN equipment_sequence AS e "
     "ON f.aircraft_code_sequence = e.aircraft_code_sequence JOIN aircraft AS ac "
     "ON e.aircraft_code = ac.aircraft_code WHERE f.flight_id = 5",
     "hard", "join", ["flight", "equipment_sequence", "aircraft"]),
    ("For each departure airport, what is the longest elapsed time of its flights, longest first?",
     "SELECT from_airport, MAX(time_elapsed) AS longest FROM flight GROUP BY from_airport ORDER BY longest DESC",
     "hard", "group_by", ["flight"]),
]

GEOGRAPHY = [
    ("What is the capital of Texas?",
     "SELECT capital FROM state WHERE state_name = 'Texas'", "easy", "filter", ["state"]),
    ("What is the population of California?",
     "SELECT population FROM state WHERE state_name = 'California'", "easy", "filter", ["state"]),
    ("Which states are in the United States?",
     "SELECT state_name FROM state WHERE country_name = 'United States'", "easy", "filter", ["state"]),
    ("How many states in the table are in the United States?",
     "SELECT COUNT(*) FROM state WHERE country_name = 'United States'", "easy", "count", ["state"]),
    ("Which state has the largest area?",
     "SELECT state_name FROM state ORDER BY area DESC LIMIT 1", "easy", "order_limit", ["state"]),
    ("What are the three most populous cities?",
     "SELECT city_name FROM city ORDER BY population DESC LIMIT 3", "easy", "order_limit", ["city"]),
    ("Which cities have a population over one million?",
     "SELECT city_name FROM city WHERE population > 1000000", "easy", "filter", ["city"]),
    ("What is the total population of the cities in the United States?",
     "SELECT SUM(population) FROM city WHERE country_name = 'United States'", "easy", "aggregate", ["city"]),
    ("Which states border Texas?",
     "SELECT border FROM border_info WHERE state_name = 'Texas'", "easy", "filter", ["border_info"]),
    ("How many borders does Florida have?",
     "SELECT COUNT(*) FROM border_info WHERE state_name = 'Florida'", "easy", "count", ["border_info", "state"]),
    ("What is the highest point in California?",
     "SELECT highest_point FROM highlow WHERE state_name = 'California'", "easy", "filter", ["highlow"]),
    ("What is the lowest point in Texas?",
     "SELECT lowest_point FROM highlow WHERE state_name = 'Texas'", "easy", "filter", ["highlow"]),
    ("Which lakes are in Michigan?",
     "SELECT lake_name FROM lake WHERE state_name = 'Michigan'", "easy", "filter", ["lake"]),
    ("What is the total area of the lakes in the United States?",
     "SELECT SUM(area) FROM lake WHERE country_name = 'United States'", "easy", "aggregate", ["lake"]),
    ("What is the largest lake?",
     "SELECT lake_name FROM lake ORDER BY area DESC LIMIT 1", "easy", "order_limit", ["lake"]),
    ("Which mountains are in Pakistan?",
     "SELECT mountain_name FROM mountain WHERE country_name = 'Pakistan'", "easy", "filter", ["mountain"]),
    ("What is the highest mountain?",
     "SELECT mountain_name FROM mountain ORDER BY mountain_altitude DESC LIMIT 1",
     "easy", "order_limit", ["mountain"]),
    ("How many mountains are there in each country?",
     "SELECT country_name, COUNT(*) FROM mountain GROUP BY country_name", "easy", "group_by", ["mountain"]),
    ("What is the longest river?",
     "SELECT river_name FROM river ORDER BY length DESC LIMIT 1", "easy", "order_limit", ["river"]),
    ("Which rivers are in Germany?",
     "SELECT river_name FROM river WHERE country_name = 'Germany'", "easy", "filter", ["river"]),
    ("Which rivers pass through Vienna?",
     "SELECT river_name FROM river WHERE traverse LIKE '%Vienna%'", "easy", "string", ["river"]),
    ("What is the average length of the rivers in Germany?",
     "SELECT AVG(length) FROM river WHERE country_name = 'Germany'", "easy", "aggregate", ["river"]),
    ("What is the population density of Ohio?",
     "SELECT density FROM state WHERE state_name = 'Ohio'", "easy", "filter", ["state"]),
    ("Which cities are in India?",
     "SELECT city_name FROM city WHERE country_name = 'India'", "easy", "filter", ["city", "state"]),
    ("What is the average altitude of the mountains in Nepal?",
     "SELECT AVG(mountain_altitude) FROM mountain WHERE country_name = 'Nepal'", "easy", "aggregate", ["mountain"]),
    ("List the cities in states with an area larger than 10000, with their state.",
     "SELECT c.city_name, s.state_name FROM city AS c JOIN state AS s ON c.state_name = s.state_name "
     "WHERE s.area > 10000", "medium", "join", ["city", "state"]),
    ("What is the capital of the state where Houston is?",
     "SELECT s.capital FROM city AS c JOIN state AS s ON c.state_name = s.state_name WHERE c.city_name = 'Houston'",
     "medium", "join", ["city", "state"]),
    ("How many cities are there in each country?",
     "SELECT country_name, COUNT(*) FROM city GROUP BY country_name", "medium", "group_by", ["city"]),
    ("Which countries have more than one mountain?",
     "SELECT country_name FROM mountain GROUP BY country_name HAVING COUNT(*) > 1",
     "medium", "group_by", ["mountain"]),
    ("What is the total population of the states in each country?",
     "SELECT country_name, SUM(population) FROM state GROUP BY country_name", "medium", "group_by", ["state"]),
    ("What is the highest point of the state whose capital is Albany?",
     "SELECT h.highest_point FROM highlow AS h JOIN state AS s ON h.state_name = s.state_name "
     "WHERE s.capital = 'Albany'", "medium", "join", ["highlow", "state"]),
    ("Which states with borders listed have a population above 100000?",
     "SELECT DISTINCT s.state_name FROM state AS s JOIN border_info AS b ON s.state_name = b.state_name "
     "WHERE s.population > 100000", "medium", "join", ["state", "border_info"]),
    ("Which country has the most lakes?",
     "SELECT country_name FROM lake GROUP BY country_name ORDER BY COUNT(*) DESC LIMIT 1",
     "medium", "order_limit", ["lake"]),
    ("In which state is the largest lake in the United States?",
     "SELECT state_name FROM lake WHERE country_name = 'United States' ORDER BY area DESC LIMIT 1",
     "medium", "order_limit", ["lake"]),
    ("Show each Canadian state with its highest point.",
     "SELECT s.state_name, h.highest_point FROM state AS s JOIN highlow AS h ON s.state_name = h.state_name "
     "WHERE s.country_name = 'Canada'", "medium", "join", ["state", "highlow"]),
    ("What is the average city population in each country, highest first?",
     "SELECT country_name, AVG(population) AS avg_population FROM city GROUP BY country_name "
     "ORDER BY avg_population DESC", "medium", "group_by", ["city"]),
    ("How many rivers does each country have, most first?",
     "SELECT country_name, COUNT(*) AS num_rivers FROM river GROUP BY country_name ORDER BY num_rivers DESC",
     "medium", "group_by", ["river"]),
    ("Which states have a population larger than the average state population?",
     "SELECT state_name FROM state WHERE population > (SELECT AVG(population) FROM state)",
     "hard", "subquery", ["state"]),
    ("What is the population of the state that borders Oklahoma?",
     "SELECT population FROM state WHERE state_name IN (SELECT state_name FROM border_info WHERE border = 'Oklahoma')",
     "hard", "subquery", ["state", "border_info"]),
    ("Which states have a larger area than California?",
     "SELECT state_name FROM state WHERE area > (SELECT area FROM state WHERE state_name = 'California')",
     "hard", "subquery", ["state"]),
    ("Which states have no city in the city table?",
     "SELECT state_name FROM state WHERE state_name NOT IN (SELECT state_name FROM city)",
     "hard", "subquery", ["state", "city"]),
    ("Which rivers are longer than every river in Germany?",
     "SELECT river_name FROM river WHERE length > (SELECT MAX(length) FROM river WHERE country_name = 'Germany')",
     "hard", "subquery", ["river"]),
    ("For each state with lakes, what is the total lake area and the state's own area?",
     "SELECT s.state_name, SUM(l.area) AS lake_area, s.area FROM state AS s JOIN lake AS l "
     "ON s.state_name = l.state_name GROUP BY s.state_name, s.area", "hard", "group_by", ["state", "lake"]),
]

RESTAURANTS = [
    ("How many restaurants are there?",
     "SELECT COUNT(*) FROM restaurant", "easy", "count", ["restaurant"]),
    ("Which restaurants serve Italian food?",
     "SELECT name FROM restaurant WHERE food_type = 'Italian'", "easy", "filter", ["restaurant"]),
    ("List the restaurants in San Francisco.",
     "SELECT name FROM restaurant WHERE city_name = 'San Francisco'", "easy", "filter", ["restaurant", "location"]),
    ("What is the rating of The Ramen Shop?",
     "SELECT rating FROM restaurant WHERE name = 'The Ramen Shop'", "easy", "filter", ["restaurant"]),
    ("Which restaurant has the highest rating?",
     "SELECT name FROM restaurant ORDER BY rating DESC LIMIT 1", "easy", "order_limit", ["restaurant"]),
    ("Which restaurants have a rating above 4.5?",
     "SELECT name FROM restaurant WHERE rating > 4.5", "easy", "filter", ["restaurant"]),
    ("How many restaurants are there in each city?",
     "SELECT city_name, COUNT(*) FROM restaurant GROUP BY city_name", "easy", "group_by", ["restaurant"]),
    ("What is the average rating for each type of food?",
     "SELECT food_type, AVG(rating) FROM restaurant GROUP BY food_type", "easy", "group_by", ["restaurant"]),
    ("How many Japanese restaurants are there?",
     "SELECT COUNT(*) FROM restaurant WHERE food_type = 'Japanese'", "easy", "count", ["restaurant"]),
    ("What types of food are served in Miami?",
     "SELECT DISTINCT food_type FROM restaurant WHERE city_name = 'Miami'", "easy", "filter", ["restaurant"]),
    ("Which cities are in the California region?",
     "SELECT city_name FROM geographic WHERE region = 'California'", "easy", "filter", ["geographic"]),
    ("What county is Miami in?",
     "SELECT county FROM geographic WHERE city_name = 'Miami'", "easy", "filter", ["geographic"]),
    ("On which streets are there restaurants in New York?",
     "SELECT street_name FROM location WHERE city_name = 'New York'", "easy", "filter", ["location"]),
    ("Which restaurant has the lowest rating?",
     "SELECT name FROM restaurant ORDER BY rating LIMIT 1", "easy", "order_limit", ["restaurant"]),
    ("How many different food types are there?",
     "SELECT COUNT(DISTINCT food_type) FROM restaurant", "easy", "count", ["restaurant"]),
    ("Which restaurants in Los Angeles have a rating below 4?",
     "SELECT name FROM restaurant WHERE city_name = 'Los Angeles' AND rating < 4", "easy", "filter", ["restaurant"]),
    ("Which restaurant names start with 'The S'?",
     "SELECT DISTINCT name FROM restaurant WHERE name LIKE 'The S%'", "easy", "string", ["restaurant"]),
    ("What is the address of The Sushi Bar? Give the house number and street.",
     "SELECT l.house_number, l.street_name FROM restaurant AS r JOIN location AS l ON r.id = l.restaurant_id "
     "WHERE r.name = 'The Sushi Bar'", "medium", "join", ["restaurant", "location"]),
    ("Which restaurants are on Pine Ave?",
     "SELECT r.name FROM restaurant AS r JOIN location AS l ON r.id = l.restaurant_id "
     "WHERE l.street_name = 'Pine Ave'", "medium", "join", ["restaurant", "location"]),
    ("List the Italian restaurants in the California region.",
     "SELECT r.name FROM restaurant AS r JOIN geographic AS g ON r.city_name = g.city_name "
     "WHERE g.region = 'California' AND r.food_type = 'Italian'", "medium", "join", ["restaurant", "geographic"]),
    ("What is the average restaurant rating in each region?",
     "SELECT g.region, AVG(r.rating) FROM restaurant AS r JOIN geographic AS g ON r.city_name = g.city_name "
     "GROUP BY g.region", "medium", "group_by", ["restaurant", "geographic"]),
    ("Which cities have more than two restaurants?",
     "SELECT city_name FROM restaurant GROUP BY city_name HAVING COUNT(*) > 2", "medium", "group_by", ["restaurant"]),
    ("Which food type has the most restaurants?",
     "SELECT food_type FROM restaurant GROUP BY food_type ORDER BY COUNT(*) DESC LIMIT 1",
     "medium", "order_limit", ["restaurant"]),
    ("How many restaurants are in Los Angeles county?",
     "SELECT COUNT(*) FROM restaurant AS r JOIN geographic AS g ON r.city_name = g.city_name "
     "WHERE g.county = 'Los Angeles'", "medium", "count", ["restaurant", "geographic"]),
    ("List the restaurants in San Francisco with their street, best rated first.",
     "SELECT r.name, l.street_name FROM restaurant AS r JOIN location AS l ON r.id = l.restaurant_id "
     "WHERE r.city_name = 'San Francisco' ORDER BY r.rating DESC", "medium", "order_limit", ["restaurant", "location"]),
    ("Which cities have a restaurant rated above 4.4?",
     "SELECT DISTINCT city_name FROM restaurant WHERE rating > 4.4", "medium", "filter", ["restaurant"]),
    ("What is the house number of The Vegan Cafe?",
     "SELECT l.house_number FROM location AS l JOIN restaurant AS r ON l.restaurant_id = r.id "
     "WHERE r.name = 'The Vegan Cafe'", "medium", "join", ["location", "restaurant"]),
    ("How many restaurants are in each county?",
     "SELECT g.county, COUNT(*) FROM restaurant AS r JOIN geographic AS g ON r.city_name = g.city_name "
     "GROUP BY g.county", "medium", "group_by", ["restaurant", "geographic"]),
    ("Which restaurants are rated higher than the average restaurant?",
     "SELECT name FROM restaurant WHERE rating > (SELECT AVG(rating) FROM restaurant)",
     "hard", "subquery", ["restaurant"]),
    ("Which restaurants are rated above the average rating of their own city?",
     "SELECT r.name FROM restaurant AS r WHERE r.rating > "
     "(SELECT AVG(r2.rating) FROM restaurant AS r2 WHERE r2.city_name = r.city_name)",
     "hard", "subquery", ["restaurant"]),
    ("Which regions have no Japanese restaurant?",
     "SELECT DISTINCT region FROM geographic WHERE region NOT IN (SELECT g.region FROM restaurant AS r "
     "JOIN geographic AS g ON r.city_name = g.city_name WHERE r.food_type = 'Japanese')",
     "hard", "subquery", ["geographic", "restaurant"]),
    ("Which city has the highest average restaurant rating?",
     "SELECT city_name FROM restaurant GROUP BY city_name ORDER BY AVG(rating) DESC LIMIT 1",
     "hard", "order_limit", ["restaurant"]),
    ("Which restaurant names are used by more than one restaurant?",
     "SELECT name FROM restaurant GROUP BY name HAVING COUNT(*) > 1", "hard", "group_by", ["restaurant"]),
]

SCHOLAR = [
    ("How many papers were published in 2020?",
     "SELECT COUNT(*) FROM paper WHERE year = 2020", "easy", "count", ["paper"]),
    ("List the titles of the papers published in 2019.",
     "SELECT title FROM paper WHERE year = 2019", "easy", "filter", ["paper"]),
    ("Which paper cites the most other papers?",
     "SELECT title FROM paper ORDER BY numciting DESC LIMIT 1", "easy", "order_limit", ["paper"]),
    ("What is the total number of times papers from 2020 were cited?",
     "SELECT SUM(numcitedby) FROM paper WHERE year = 2020", "easy", "aggregate", ["paper"]),
    ("List the names of all datasets.",
     "SELECT datasetname FROM dataset", "easy", "filter", ["dataset", "paperdataset"]),
    ("What are the names of all journals?",
     "SELECT journalname FROM journal", "easy", "filter", ["journal"]),
    ("Count the authors.",
     "SELECT COUNT(*) FROM author", "easy", "count", ["author"]),
    ("How many papers were published each year?",
     "SELECT year, COUNT(*) FROM paper GROUP BY year", "easy", "group_by", ["paper"]),
    ("On average, how many papers do the papers from 2019 cite?",
     "SELECT AVG(numciting) FROM paper WHERE year = 2019", "easy", "aggregate", ["paper"]),
    ("What are the names of the venues?",
     "SELECT venuename FROM venue", "easy", "filter", ["venue"]),
    ("Which papers have 'Machine Learning' in their title?",
     "SELECT title FROM paper WHERE title LIKE '%Machine Learning%'", "easy", "string", ["paper"]),
    ("How many papers are in each field? Show the field id.",
     "SELECT fieldid, COUNT(*) FROM paperfield GROUP BY fieldid", "easy", "group_by", ["paperfield"]),
    ("Which papers were cited by at least two papers?",
     "SELECT title FROM paper WHERE numcitedby >= 2", "easy", "filter", ["paper"]),
    ("Which papers did John Smith write?",
     "SELECT p.title FROM paper AS p JOIN writes AS w ON p.paperid = w.paperid JOIN author AS a "
     "ON w.authorid = a.authorid WHERE a.authorname = 'John Smith'", "medium", "join", ["paper", "writes", "author"]),
    ("Who are the authors of 'Social Media and Mental Health'?",
     "SELECT a.authorname FROM author AS a JOIN writes AS w ON a.authorid = w.authorid JOIN paper AS p "
     "ON w.paperid = p.paperid WHERE p.title = 'Social Media and Mental Health'",
     "medium", "join", ["author", "writes", "paper"]),
    ("How many papers has each author written? Show author names.",
     "SELECT a.authorname, COUNT(*) FROM author AS a JOIN writes AS w ON a.authorid = w.authorid "
     "GROUP BY a.authorname", "medium", "group_by", ["author", "writes"]),
    ("At which venue was 'COVID-19 Impact on Society' published?",
     "SELECT v.venuename FROM paper AS p JOIN venue AS v ON p.venueid = v.venueid "
     "WHERE p.title = 'COVID-19 Impact on Society'", "medium", "join", ["paper", "venue"]),
    ("Which journal published 'Social Media and Mental Health'?",
     "SELECT j.journalname FROM paper AS p JOIN journal AS j ON p.journalid = j.journalid "
     "WHERE p.title = 'Social Media and Mental Health'", "medium", "join", ["paper", "journal"]),
    ("What keyphrases are attached to 'Machine Learning in Tackling Climate Change'?",
     "SELECT k.keyphrasename FROM keyphrase AS k JOIN paperkeyphrase AS pk ON k.keyphraseid = pk.keyphraseid "
     "JOIN paper AS p ON pk.paperid = p.paperid WHERE p.title = 'Machine Learning in Tackling Climate Change'",
     "medium", "join", ["keyphrase", "paperkeyphrase", "paper"]),
    ("Which papers use the dataset 'Climate Change Data'?",
     "SELECT p.title FROM paper AS p JOIN paperdataset AS pd ON p.paperid = pd.paperid JOIN dataset AS d "
     "ON pd.datasetid = d.datasetid WHERE d.datasetname = 'Climate Change Data'",
     "medium", "join", ["paper", "paperdataset", "dataset"]),
    ("How many papers were published at each venue? Show venue names.",
     "SELECT v.venuename, COUNT(*) FROM paper AS p JOIN venue AS v ON p.venueid = v.venueid GROUP BY v.venuename",
     "medium", "group_by", ["paper", "venue"]),
    ("How many papers has each journal published, most first?",
     "SELECT j.journalname, COUNT(*) AS num_papers FROM paper AS p JOIN journal AS j "
     "ON p.journalid = j.journalid GROUP BY j.journalname ORDER BY num_papers DESC",
     "medium", "group_by", ["paper", "journal"]),
    ("List the papers published in 2020 at the venue 'Conference on Machine Learning'.",
     "SELECT p.title FROM paper AS p JOIN venue AS v ON p.venueid = v.venueid "
     "WHERE p.year = 2020 AND v.venuename = 'Conference on Machine Learning'", "medium", "join", ["paper", "venue"]),
    ("How many authors wrote the paper 'A Study on Machine Learning Algorithms'?",
     "SELECT COUNT(*) FROM writes AS w JOIN paper AS p ON w.paperid = p.paperid "
     "WHERE p.title = 'A Study on Machine Learning Algorithms'", "medium", "count", ["writes", "paper"]),
    ("What is the average number of citations per paper in each year?",
     "SELECT year, AVG(numcitedby) FROM paper GROUP BY year", "medium", "group_by", ["paper"]),
    ("Which papers cite 'A Study on Machine Learning Algorithms'?",
     "SELECT p.title FROM cite AS c JOIN paper AS p ON c.citingpaperid = p.paperid WHERE c.citedpaperid = "
     "(SELECT paperid FROM paper WHERE title = 'A Study on Machine Learning Algorithms')",
     "hard", "subquery", ["cite", "paper"]),
    ("Which author has written the most papers?",
     "SELECT a.authorname FROM author AS a JOIN writes AS w ON a.authorid = w.authorid GROUP BY a.authorname "
     "ORDER BY COUNT(*) DESC LIMIT 1", "hard", "order_limit", ["author", "writes"]),
    ("Which authors have written papers with the keyphrase 'Climate Change'?",
     "SELECT DISTINCT a.authorname FROM author AS a JOIN writes AS w ON a.authorid = w.authorid "
     "JOIN paperkeyphrase AS pk ON w.paperid = pk.paperid JOIN keyphrase AS k ON pk.keyphraseid = k.keyphraseid "
     "WHERE k.keyphrasename = 'Climate Change'", "hard", "join", ["author", "writes", "paperkeyphrase", "keyphrase"]),
    ("Which papers are cited more often than the average paper?",
     "SELECT title FROM paper WHERE numcitedby > (SELECT AVG(numcitedby) FROM paper)",
     "hard", "subquery", ["paper"]),
    ("Which keyphrases are used by more than one paper?",
     "SELECT k.keyphrasename FROM keyphrase AS k JOIN paperkeyphrase AS pk ON k.keyphraseid = pk.keyphraseid "
     "GROUP BY k.keyphrasename HAVING COUNT(*) > 1", "hard", "group_by", ["keyphrase", "paperkeyphrase"]),
    ("Who has co-written a paper with Sarah Davis?",
     "SELECT DISTINCT a2.authorname FROM author AS a1 JOIN writes AS w1 ON a1.authorid = w1.authorid "
     "JOIN writes AS w2 ON w1.paperid = w2.paperid JOIN author AS a2 ON w2.authorid = a2.authorid "
     "WHERE a1.authorname = 'Sarah Davis' AND a2.authorname <> 'Sarah Davis'", "hard", "join", ["author", "writes"]),
]

YELP = [
    ("How many businesses are in San Francisco?",
     "SELECT COUNT(*) FROM business WHERE city = 'San Francisco'", "easy", "count", ["business"]),
    ("Which businesses are open?",
     "SELECT name FROM business WHERE is_open = 1", "easy", "filter", ["business"]),
    ("Which business has the highest rating?",
     "SELECT name FROM business ORDER BY rating DESC LIMIT 1", "easy", "order_limit", ["business"]),
    ("List the businesses in New York with a rating above 4.5.",
     "SELECT name FROM business WHERE city = 'New York' AND rating > 4.5", "easy", "filter", ["business"]),
    ("How many businesses are there in each state?",
     "SELECT state, COUNT(*) FROM business GROUP BY state", "easy", "group_by", ["business"]),
    ("What is the average rating of the businesses in California?",
     "SELECT AVG(rating) FROM business WHERE state = 'CA'", "easy", "aggregate", ["business"]),
    ("What is the full address of Anna's Diner?",
     "SELECT full_address FROM business WHERE name = 'Anna''s Diner'", "easy", "filter", ["business"]),
    ("How many reviews were written in 2021?",
     "SELECT COUNT(*) FROM review WHERE year = 2021", "easy", "date", ["review"]),
    ("Which reviews have a rating below 2? Show their text.",
     "SELECT text FROM review WHERE rating < 2", "easy", "filter", ["review"]),
    ("What is the total number of check-ins on Fridays?",
     "SELECT SUM(count) FROM checkin WHERE day = 'Friday'", "easy", "aggregate", ["checkin"]),
    ("How many check-ins are there on each day of the week?",
     "SELECT day, SUM(count) FROM checkin GROUP BY day", "easy", "group_by", ["checkin"]),
    ("How many users are there?",
     "SELECT COUNT(*) FROM users", "easy", "count", ["users", "review"]),
    ("Which neighbourhoods are there?",
     "SELECT DISTINCT neighbourhood_name FROM neighbourhood", "easy", "filter", ["neighbourhood"]),
    ("Which businesses have 'Pizza' in their name?",
     "SELECT name FROM business WHERE name LIKE '%Pizza%'", "easy", "string", ["business"]),
    ("Show the name and review count of the businesses that are closed.",
     "SELECT name, review_count FROM business WHERE is_open = 0", "easy", "filter", ["business"]),
    ("Which businesses in California are closed?",
     "SELECT name FROM business WHERE state = 'CA' AND is_open = 0", "easy", "filter", ["business"]),
    ("How many tips were written in June 2021?",
     "SELECT COUNT(*) FROM tip WHERE year = 2021 AND month = 'June'", "easy", "date", ["tip"]),
    ("Which categories does Joe's Pizza belong to?",
     "SELECT c.category_name FROM category AS c JOIN business AS b ON c.business_id = b.business_id "
     "WHERE b.name = 'Joe''s Pizza'", "medium", "join", ["category", "business"]),
    ("Which businesses are in the Downtown neighbourhood?",
     "SELECT b.name FROM business AS b JOIN neighbourhood AS n ON b.business_id = n.business_id "
     "WHERE n.neighbourhood_name = 'Downtown'", "medium", "join", ["business", "neighbourhood"]),
    ("Show the text of the reviews of Peter's Cafe.",
     "SELECT r.text FROM review AS r JOIN business AS b ON r.business_id = b.business_id "
     "WHERE b.name = 'Peter''s Cafe'", "medium", "join", ["review", "business"]),
    ("What is the average review rating of each business? Show business names.",
     "SELECT b.name, AVG(r.rating) FROM business AS b JOIN review AS r ON b.business_id = r.business_id "
     "GROUP BY b.name", "medium", "group_by", ["business", "review"]),
    ("Who wrote the review 'Hate it'?",
     "SELECT u.name FROM users AS u JOIN review AS r ON u.user_id = r.user_id WHERE r.text = 'Hate it'",
     "medium", "join", ["users", "review"]),
    ("How many reviews has each user written? Show user names.",
     "SELECT u.name, COUNT(*) FROM users AS u JOIN review AS r ON u.user_id = r.user_id GROUP BY u.name",
     "medium", "group_by", ["users", "review"]),
    ("Which business has the most check-ins in total?",
     "SELECT b.name FROM business AS b JOIN checkin AS c ON b.business_id = c.business_id GROUP BY b.name "
     "ORDER BY SUM(c.count) DESC LIMIT 1", "medium", "order_limit", ["business", "checkin"]),
    ("Which business received the tip \"Don't waste your money.\"?",
     "SELECT b.name FROM business AS b JOIN tip AS t ON b.business_id = t.business_id "
     "WHERE t.text = 'Don''t waste your money.'", "medium", "join", ["business", "tip"]),
    ("Which reviews were written in April 2021? Show their text.",
     "SELECT text FROM review WHERE year = 2021 AND month = 'April'", "medium", "date", ["review"]),
    ("How many tips were left in each month of 2021?",
     "SELECT month, COUNT(*) FROM tip WHERE year = 2021 GROUP BY month", "medium", "date", ["tip"]),
    ("Which categories are found in San Francisco?",
     "SELECT DISTINCT c.category_name FROM category AS c JOIN business AS b ON c.business_id = b.business_id "
     "WHERE b.city = 'San Francisco'", "medium", "join", ["category", "business"]),
    ("How many businesses are in each category?",
     "SELECT category_name, COUNT(*) FROM category GROUP BY category_name", "medium", "group_by", ["category"]),
    ("How many reviews does each business have in the review table? Show business names.",
     "SELECT b.name, COUNT(r.rid) FROM business AS b LEFT JOIN review AS r ON b.business_id = r.business_id "
     "GROUP BY b.name", "medium", "group_by", ["business", "review"]),
    ("Which businesses have an average review rating above 4.5?",
     "SELECT b.name FROM business AS b JOIN review AS r ON b.business_id = r.business_id GROUP BY b.name "
     "HAVING AVG(r.rating) > 4.5", "hard", "group_by", ["business", "review"]),
    ("Which users have reviewed businesses in New York?",
     "SELECT DISTINCT u.name FROM users AS u JOIN review AS r ON u.user_id = r.user_id JOIN business AS b "
     "ON r.business_id = b.business_id WHERE b.city = 'New York'", "hard", "join", ["users", "review", "business"]),
    ("Which businesses have fewer than two check-in records?",
     "SELECT b.name FROM business AS b JOIN checkin AS c ON b.business_id = c.business_id GROUP BY b.name "
     "HAVING COUNT(*) < 2", "hard", "group_by", ["business", "checkin"]),
    ("Which users left both a review and a tip for the same business?",
     "SELECT DISTINCT u.name FROM users AS u JOIN review AS r ON u.user_id = r.user_id JOIN tip AS t "
     "ON t.user_id = r.user_id AND t.business_id = r.business_id", "hard", "join", ["users", "review", "tip"]),
    ("For each city, which business has the highest rating?",
     "SELECT b.city, b.name FROM business AS b WHERE b.rating = "
     "(SELECT MAX(b2.rating) FROM business AS b2 WHERE b2.city = b.city)", "hard", "subquery", ["business"]),
    ("Rank the businesses in San Francisco by rating, showing each name with its rank.",
     "SELECT name, RANK() OVER (ORDER BY rating DESC) AS rating_rank FROM business WHERE city = 'San Francisco'",
     "hard", "order_limit", ["business"]),
]

EXAMPLES = {"academic": ACADEMIC, "advising": ADVISING, "atis": ATIS, "geography": GEOGRAPHY,
            "restaurants": RESTAURANTS, "scholar": SCHOLAR, "yelp": YELP}


def check(db_id: str, question: str, sql: str, tables: list[str], db_path: Path) -> None:
    """Gold SQL must run, return rows, and read only tables its context shows (plus at most one extra)."""
    import duckdb

    used = {t.name for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table)}
    missing, extra = used - set(tables), set(tables) - used
    if missing or len(extra) > 1:
        raise SystemExit(f"[{db_id}] {question!r}: context tables {tables} but the query reads {sorted(used)}")
    with duckdb.connect(str(db_path), read_only=True) as con:
        try:
            rows = con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise SystemExit(f"[{db_id}] {question!r}: gold SQL failed: {e}\n  {sql}") from e
    if not rows:
        raise SystemExit(f"[{db_id}] {question!r}: gold SQL returned no rows\n  {sql}")


def eval_picks(records: list[dict], size: int = EVAL_SIZE) -> set[int]:
    """Indices of a held-out set spread over databases and difficulties, the same on every run.

    Each database gets a share of `size` in proportion to its records (largest remainder), each difficulty
    within it likewise; inside a (database, difficulty) group records are taken in order of a hash of the
    question, so adding a question moves few others.
    """
    def shares(counts: dict, total: int) -> dict:
        n = sum(counts.values())
        exact = {k: total * c / n for k, c in counts.items()}
        out = {k: int(v) for k, v in exact.items()}
        for k in sorted(exact, key=lambda k: (out[k] - exact[k], k))[:total - sum(out.values())]:
            out[k] += 1
        return out

    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r["db_id"], r["difficulty"]].append(i)
    picks: set[int] = set()
    per_db = shares(Counter(r["db_id"] for r in records), size)
    for db_id, quota in per_db.items():
        by_difficulty = {d: len(ix) for (db, d), ix in groups.items() if db == db_id}
        for difficulty, k in shares(by_difficulty, quota).items():
            ranked = sorted(groups[db_id, difficulty],
                            key=lambda i: hashlib.sha256(records[i]["question"].encode()).hexdigest())
            picks.update(ranked[:k])
    return picks


def build(out_dir: Path = HERE) -> tuple[list[dict], list[dict]]:
    records = []
    seen: set[str] = set()
    for db_id, entries in EXAMPLES.items():
        db_path = prepare_database(db_id)
        for question, sql, difficulty, category, tables in entries:
            key = " ".join(question.lower().split())
            if key in seen:
                raise SystemExit(f"[{db_id}] duplicate question: {question!r}")
            seen.add(key)
            check(db_id, question, sql, tables, db_path)
            records.append({"db_id": db_id, "question": question, "context": schema_ddl(db_path, tables),
                            "answer": sql, "difficulty": difficulty, "category": category})
    picks = eval_picks(records)
    train = [r for i, r in enumerate(records) if i not in picks]
    held_out = [r for i, r in enumerate(records) if i in picks]
    for name, rows in (("train.jsonl", train), ("eval.jsonl", held_out)):
        with (out_dir / name).open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return train, held_out


def main() -> None:
    train, held_out = build()
    everything = train + held_out
    print(f"wrote {len(train)} train and {len(held_out)} eval records to {HERE}")
    for field in ("db_id", "difficulty", "category"):
        total, in_eval = Counter(r[field] for r in everything), Counter(r[field] for r in held_out)
        print(f"{field}: " + ", ".join(f"{k} {total[k]} ({in_eval[k]} eval)" for k in sorted(total)))
    chars = sorted(len(r["context"]) for r in everything)
    print(f"context length in characters: median {chars[len(chars) // 2]}, max {chars[-1]} (~4 per token)")


if __name__ == "__main__":
    main()
