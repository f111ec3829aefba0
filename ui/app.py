"""The sqlft page: pick a database (or paste DDL), browse its tables, ask a question, read and edit the SQL, run
it, see and download the rows, mark the answer right or wrong (kept as training data by the server).

    sqlft ui                      (or: SQLFT_API_URL=http://127.0.0.1:8000 streamlit run ui/app.py)

It talks to the API only over HTTP (ui/client.py); SQLFT_API_KEY is sent when set. The history is the server's
(GET/POST /history, per API key), so it survives a reload of the page.
"""

import hashlib
import os
import re
import uuid

import pandas as pd
import streamlit as st

from ui.charts import choose_chart
from ui.client import ApiClient, result_problem

DEFAULT_API_URL = "http://127.0.0.1:8000"
REGISTERED, PASTED = "Registered database", "Paste DDL"
HISTORY_SHOWN = 20
THUMBS = {1: "up", 0: "down"}  # st.feedback("thumbs") gives 1 for up, 0 for down

st.set_page_config(page_title="sqlft", page_icon=":material/database:", layout="wide")
api = ApiClient(os.environ.get("SQLFT_API_URL", DEFAULT_API_URL), os.environ.get("SQLFT_API_KEY") or None)
state = st.session_state
state.setdefault("history", None)  # the server's history, newest first (None: to be fetched)
state.setdefault("answer", None)  # the answer on screen: question, database, sql, raw, valid, result, ...
state.setdefault("tables", {})  # database -> its tables (GET /databases/{name}/tables), fetched once


def load_databases() -> None:
    reply = api.databases()
    state["databases"] = {d["name"]: d for d in reply.data} if reply.ok else None
    state["databases_error"] = reply.error


def show(answer: dict) -> None:
    state["answer"] = answer
    state["sql_editor"] = answer["sql"]  # set before the text area exists in this run, so it shows the new SQL


def recall(item: dict) -> None:
    """A history entry back on screen: its question and SQL (run it again for the rows)."""
    show({"key": f"history-{item['id']}", "question": item["question"], "database": item.get("database"),
          "db_schema": item.get("db_schema"), "sql": item["sql"], "valid": True, "asked_at": item["at"]})


def remember(answer: dict) -> None:
    result = answer.get("result") or {}
    reply = api.add_history(answer["question"], answer["sql"], database=answer["database"],
                            db_schema=answer.get("db_schema"), status=result.get("status"),
                            rows=len(result["rows"]) if result.get("status") == "ok" else None)
    state["history"] = None  # fetched again, with this answer first
    state["history_error"] = "" if reply.ok else f"This answer is not in the history: {reply.error}"


def judged_sql(answer: dict) -> str:
    """The SQL a thumb judges: the one whose rows are on screen (edited and run), else the model's."""
    return answer.get("sql_run") or answer["sql"]


def mark(answer: dict, sql: str, key: str) -> None:
    """st.feedback's callback: send the verdict; the reply (file, count) or the error is shown under it."""
    verdict = THUMBS.get(state[key])
    if verdict is None:
        return
    reply = api.feedback(answer["question"], sql, verdict, database=answer["database"],
                         db_schema=answer.get("db_schema"), model_sql=answer["sql"])
    answer.setdefault("verdicts", {})[sql] = reply.data if reply.ok else {"error": reply.error}


def judge(answer: dict) -> None:
    """Thumbs up / down on the SQL on screen, and where the server kept the verdict."""
    sql = judged_sql(answer)
    if not sql:
        return
    saved = answer.get("verdicts", {}).get(sql)
    ask, thumbs = st.columns([6, 1], vertical_alignment="center")
    ask.caption("Is this SQL right? Thumbs up keeps the question and SQL as a training example "
                "(`sqlft train CONFIG data.train=FILE`); thumbs down keeps it apart, never trained on.")
    key = f"verdict-{answer['key']}-{hashlib.sha1(sql.encode()).hexdigest()[:12]}"  # a new SQL: a new vote
    with thumbs:
        st.feedback("thumbs", key=key, on_change=mark, args=(answer, sql, key),
                    disabled=bool(saved and "error" not in saved))
    if saved and "error" in saved:
        st.error(saved["error"])
    elif saved and saved["trainable"]:
        st.success(f"Kept as a training example: {saved['file']} ({saved['records']} so far). Fine-tune on them "
                   f"with `sqlft train CONFIG data.train={saved['file']}`.", icon=":material/thumb_up:")
    elif saved:
        st.info(f"Kept as a wrong answer, never trained on: {saved['file']} ({saved['records']} so far).",
                icon=":material/thumb_down:")


def key_columns(table: dict) -> pd.DataFrame:
    """A table's columns for the browser: name, type, and PK / FK (the sidebar is narrow: targets go below)."""
    rows = [[c["name"], c["type"], ", ".join(k for k, on in (("PK", c["primary_key"]), ("FK", c["references"])) if on)]
            for c in table["columns"]]
    return pd.DataFrame(rows, columns=["column", "type", "key"])


def references(table: dict) -> str:
    """Where its foreign keys point: 'customer_id → customer.id' lines."""
    return "  \n".join(f"{', '.join(fk['columns'])} → {fk['table']}.{', '.join(fk['ref_columns'])}"
                       for fk in table["foreign_keys"])


def csv_name(question: str) -> str:
    return (re.sub(r"[^a-z0-9]+", "_", question.lower()).strip("_")[:60] or "result") + ".csv"


def table_of(result: dict) -> pd.DataFrame:
    columns, seen = [], {}
    for name in result["columns"]:  # SELECT a.id, b.id: a table needs distinct column names
        seen[name] = seen.get(name, 0) + 1
        columns.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return pd.DataFrame(result["rows"], columns=columns)


# ------------------------------------------------------------------------------------------ sidebar

with st.sidebar:
    st.header("Database")
    ready = api.ready()
    if not ready.ok:
        (st.info if ready.code == "not_ready" else st.error)(ready.error)
        st.button("Check again")
    else:
        st.caption(f"API {api.base_url} · template {ready.data.get('template', '?')}")
    if ready.ok and not state.get("databases"):
        load_databases()

    source = st.radio("Schema", [REGISTERED, PASTED], horizontal=True, label_visibility="collapsed")
    database, ddl = None, ""
    if source == REGISTERED:
        databases = state.get("databases") or {}
        if state.get("databases_error") and ready.ok:
            st.error(state["databases_error"])
        database = st.selectbox("Database", list(databases), index=0 if databases else None,
                                format_func=lambda name: f"{name} ({databases[name]['engine']})"
                                if databases.get(name, {}).get("engine") else name,
                                placeholder="no database registered" if ready.ok else "waiting for the API")
        ddl = databases[database]["db_schema"] if database else ""
        if database and database not in state["tables"]:
            reply = api.tables(database)
            state["tables"][database] = reply.data if reply.ok else reply.error
        browsed = state["tables"].get(database) if database else None
        if isinstance(browsed, str):  # an older server without the route, or an error
            st.caption(f"No table browser: {browsed}")
        elif browsed:
            st.subheader(f"Tables ({len(browsed)})")
            for table in browsed:
                keys = " · PK" if table["primary_key"] else ""
                keys += f" · {len(table['foreign_keys'])} FK" if table["foreign_keys"] else ""
                with st.expander(f"{table['name']} ({len(table['columns'])} columns{keys})", icon=":material/table:"):
                    st.table(key_columns(table), hide_index=True)
                    if table["foreign_keys"]:
                        st.caption(references(table))
    else:
        ddl = st.text_area("CREATE TABLE statements", height=220,
                           placeholder="CREATE TABLE singer (singer_id INT, name VARCHAR, age INT);")
    max_rows = st.number_input("Rows to show", min_value=1, max_value=1000, value=100, step=50)
    prune = st.checkbox("Prune the schema", help="Send the model only the tables the question seems to need "
                        "(name matches plus join neighbours): for schemas too big for the model's context.")
    candidates = st.number_input("Answers to vote over", min_value=1, max_value=8, value=1, step=1,
                                 disabled=source != REGISTERED,
                                 help="Above 1: the model writes that many answers, each runs on the database, and "
                                 "the SQL whose result most of them give is shown (the first answer on a tie). "
                                 "Needs a registered database.")
    repair = st.checkbox("Repair table and column names", value=True, disabled=source != REGISTERED,
                         help="An answer that does not run on the database is rewritten to the table and column "
                         "names its schema has (an answer that runs is never changed). Needs a registered database.")

    history = st.container()  # filled at the end of the run, so an answer given in this run is listed too

# ------------------------------------------------------------------------------------------ main

st.title("Ask your database")
if ddl:
    with st.expander(f"Schema of {database}" if database else "Schema", expanded=False):
        st.code(ddl, language="sql")

with st.form("ask"):
    question = st.text_input("Question", placeholder="Which city has the most restaurants?")
    asked = st.form_submit_button("Generate SQL", type="primary", disabled=not ready.ok)

if asked:
    if not question.strip():
        st.warning("Type a question first.")
    elif not ddl.strip():
        st.warning("Pick a database or paste CREATE TABLE statements first.")
    else:
        with st.spinner("Writing SQL..."):
            reply = api.ask(question, database=database, db_schema=None if database else ddl,
                            execute=bool(database), max_rows=int(max_rows), prune_schema=prune,
                            candidates=int(candidates), repair=repair)
        if reply.ok:
            answer = {"key": uuid.uuid4().hex, "question": question, "database": database,
                      "db_schema": None if database else ddl} | reply.data
            remember(answer)
            show(answer)
        else:
            st.error(reply.error)

answer = state["answer"]
if answer:
    st.subheader(answer["question"])
    st.code(answer["sql"] or "-- the model wrote no SQL", language="sql")
    if answer.get("executed_sql"):  # transpiled from the model's dialect to the database engine's
        st.caption(f"Run on {answer.get('engine') or 'the database'} as:")
        st.code(answer["executed_sql"], language="sql")
    timings = answer.get("timings")
    notes = [f"{answer.get('new_tokens', 0)} tokens in {timings.get('generate_s', 0):.1f} s" if timings
             else f"from the history, asked {answer.get('asked_at', '')}"]
    vote = answer.get("vote")
    if vote:
        notes.append(f"voted over {vote['candidates']} answers: {vote['ran']} ran, {vote['votes']} agreed"
                     + ("; not the first answer" if vote["changed"] else "; the first answer kept"))
    if answer.get("repaired_from"):
        notes.append(f"names repaired; the model wrote: {answer['repaired_from']}")
    if answer.get("kept_tables"):
        notes.append("tables shown to the model: " + ", ".join(answer["kept_tables"]))
    if not answer["valid"]:
        notes.append(f"does not parse: {answer['parse_error']}")
    st.caption(" · ".join(notes))
    if "raw" in answer:
        with st.expander("What the model wrote"):
            st.text(answer["raw"])

    edited = st.text_area("Edit the SQL, then run it", key="sql_editor", height=120)
    run = st.button("Run SQL", disabled=not answer["database"],
                    help=None if answer["database"] else "Pasted DDL has no rows: pick a registered database to run SQL.")
    if run:
        with st.spinner("Running..."):
            reply = api.execute(answer["database"], edited, max_rows=int(max_rows))
        if reply.ok:
            answer["result"], answer["sql_run"] = reply.data, edited
        else:
            st.error(reply.error)

    result, chart = answer.get("result"), None
    if result:
        problem = result_problem(result)
        if problem:
            st.error(problem)
        else:
            frame = table_of(result)
            more = " (more rows exist; only these were fetched)" if result["truncated"] else ""
            count, download = st.columns([4, 1], vertical_alignment="center")
            count.caption(f"{len(frame)} row(s) in {result['elapsed_s'] * 1000:.0f} ms{more}")
            download.download_button("Download CSV", frame.to_csv(index=False), file_name=csv_name(answer["question"]),
                                     mime="text/csv", icon=":material/download:", width="stretch")
            st.dataframe(frame, hide_index=True)
            chart = choose_chart(list(frame.columns), result["rows"])
    judge(answer)  # under the rows it judges, above a chart that may be tall
    if chart:
        draw = st.bar_chart if chart.kind == "bar" else st.line_chart
        draw(frame, x=chart.x, y=chart.y, **({"sort": False} if chart.kind == "bar" else {}))  # keep SQL order

with history:
    if state["history"] is None and ready.ok:  # not ready: asked again on a later run
        reply = api.history(limit=HISTORY_SHOWN)
        state["history"] = reply.data if reply.ok else []
        if not reply.ok:
            state["history_error"] = f"No history: {reply.error}"
    if state.get("history_error"):
        st.caption(state["history_error"])
    if state["history"]:
        st.header("History")
        for item in state["history"]:
            sign = {"ok": "✓", None: "·"}.get(item.get("status"), "✗")
            # A callback runs before the next run, when the SQL editor may still be set.
            st.button(f"{sign} {item['question'][:60]}", key=f"history-{item['id']}", width="stretch",
                      help=f"{item.get('database') or 'pasted schema'} · {item['at']}\n\n{item['sql'] or '(no SQL)'}",
                      on_click=recall, args=(item,))
        if st.button("Clear history", type="tertiary", icon=":material/delete:"):
            api.clear_history()
            state["history"] = None
            st.rerun()
