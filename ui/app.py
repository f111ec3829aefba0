"""The sqlft page: pick a database (or paste DDL), ask a question, read and edit the SQL, run it, see rows.

    sqlft ui                      (or: SQLFT_API_URL=http://127.0.0.1:8000 streamlit run ui/app.py)

It talks to the API only over HTTP (ui/client.py); SQLFT_API_KEY is sent when set.
"""

import os

import pandas as pd
import streamlit as st

from ui.charts import choose_chart
from ui.client import ApiClient, result_problem

DEFAULT_API_URL = "http://127.0.0.1:8000"
REGISTERED, PASTED = "Registered database", "Paste DDL"
HISTORY_SHOWN = 10

st.set_page_config(page_title="sqlft", page_icon=":material/database:", layout="wide")
api = ApiClient(os.environ.get("SQLFT_API_URL", DEFAULT_API_URL), os.environ.get("SQLFT_API_KEY") or None)
state = st.session_state
state.setdefault("history", [])  # every answer of this session, newest last
state.setdefault("answer", None)  # the answer on screen: question, database, sql, raw, valid, result, ...


def load_databases() -> None:
    reply = api.databases()
    state["databases"] = {d["name"]: d for d in reply.data} if reply.ok else None
    state["databases_error"] = reply.error


def show(answer: dict) -> None:
    state["answer"] = answer
    state["sql_editor"] = answer["sql"]  # set before the text area exists in this run, so it shows the new SQL


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
            answer = {"question": question, "database": database} | reply.data
            state["history"].append(answer)
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
    timings = answer.get("timings") or {}
    notes = [f"{answer.get('new_tokens', 0)} tokens in {timings.get('generate_s', 0):.1f} s"]
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
    with st.expander("What the model wrote"):
        st.text(answer.get("raw", ""))

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

    result = answer.get("result")
    if result:
        problem = result_problem(result)
        if problem:
            st.error(problem)
        else:
            frame = table_of(result)
            more = " (more rows exist; only these were fetched)" if result["truncated"] else ""
            st.caption(f"{len(frame)} row(s) in {result['elapsed_s'] * 1000:.0f} ms{more}")
            st.dataframe(frame, hide_index=True)
            chart = choose_chart(list(frame.columns), result["rows"])
            if chart:
                draw = st.bar_chart if chart.kind == "bar" else st.line_chart
                draw(frame, x=chart.x, y=chart.y, **({"sort": False} if chart.kind == "bar" else {}))  # keep SQL order

with history:
    if state["history"]:
        st.header("History")
        for i, past in reversed(list(enumerate(state["history"]))[-HISTORY_SHOWN:]):
            mark = {"ok": "✓", None: "·"}.get((past.get("result") or {}).get("status"), "✗")
            # A callback runs before the next run, when the SQL editor may still be set.
            st.button(f"{mark} {past['question'][:60]}", key=f"history-{i}", help=past["sql"] or "(no SQL)",
                      width="stretch", on_click=show, args=(past,))
