"""The page's only way to the model and databases: the sqlft HTTP API, over httpx.

Every call returns a Reply: the JSON on success, or an error in plain words (never an exception), so the page
can show it as it is.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx


@dataclass
class Reply:
    data: Any = None
    error: str = ""  # plain words for the page; "" on success
    code: str = ""  # the API's error code (not_ready, context_too_long, ...) or a transport problem

    @property
    def ok(self) -> bool:
        return not self.error


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 180.0):
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def ready(self) -> Reply:
        return self._call("GET", "/readyz")

    def databases(self) -> Reply:
        return self._call("GET", "/databases")

    def ask(self, question: str, *, database: str | None = None, db_schema: str | None = None,
            execute: bool = False, max_rows: int | None = None, prune_schema: bool = False,
            candidates: int = 1, repair: bool = False) -> Reply:
        """candidates > 1 (with a database): vote over that many answers' executed results; repair (with a
        database): an answer that does not run there is rewritten to the schema's names."""
        body = {"question": question, "execute": execute, "prune_schema": prune_schema}
        body |= {"database": database} if database else {"db_schema": db_schema}
        if candidates > 1 and database:
            body |= {"candidates": candidates, "vote": True}
        if repair and database:
            body["repair"] = True
        if max_rows:
            body["max_rows"] = max_rows
        return self._call("POST", "/sql", body)

    def execute(self, database: str, sql: str, max_rows: int | None = None) -> Reply:
        body = {"database": database, "sql": sql} | ({"max_rows": max_rows} if max_rows else {})
        return self._call("POST", "/execute", body)

    def tables(self, database: str) -> Reply:
        """The database's tables: columns with types, primary and foreign keys (for the schema browser)."""
        return self._call("GET", f"/databases/{quote(database, safe='')}/tables")

    def history(self, limit: int = 20) -> Reply:
        """This key's past questions and answers on the server, newest first."""
        return self._call("GET", "/history", params={"limit": limit})

    def add_history(self, question: str, sql: str, *, database: str | None = None, db_schema: str | None = None,
                    status: str | None = None, rows: int | None = None) -> Reply:
        body = {"question": question, "sql": sql, "status": status, "rows": rows}
        body |= {"database": database} if database else {"db_schema": db_schema}
        return self._call("POST", "/history", {k: v for k, v in body.items() if v is not None})

    def clear_history(self) -> Reply:
        return self._call("DELETE", "/history")

    def feedback(self, question: str, sql: str, verdict: str, *, database: str | None = None,
                 db_schema: str | None = None, model_sql: str | None = None) -> Reply:
        """verdict "up" (the SQL answers the question: kept as a training record) or "down" (kept apart)."""
        body = {"question": question, "sql": sql, "verdict": verdict}
        body |= {"database": database} if database else {"db_schema": db_schema}
        if model_sql and model_sql != sql:
            body["model_sql"] = model_sql
        return self._call("POST", "/feedback", body)

    def _call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> Reply:
        try:
            response = self.http.request(method, path, json=body, params=params)
        except httpx.TimeoutException:
            return Reply(error=f"The API at {self.base_url} did not answer in time. The model may be busy; "
                               "try again.", code="transport_timeout")
        except httpx.HTTPError as e:
            return Reply(error=f"Cannot reach the sqlft API at {self.base_url} ({type(e).__name__}). Start it "
                               "with `sqlft serve`, or run `sqlft ui --with-server MODEL` to start both.",
                         code="unreachable")
        try:
            data = response.json()
        except ValueError:
            return Reply(error=f"The API answered {response.status_code} with something that is not JSON.",
                         code="bad_response")
        if response.status_code >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            return Reply(data=data, error=error.get("message") or f"The API answered {response.status_code}.",
                         code=error.get("code", "http_error"))
        return Reply(data=data)


def result_problem(result: dict) -> str:
    """Why an execution gave no rows, in plain words ("" when it did run)."""
    status, error = result.get("status"), result.get("error", "")
    if status == "rejected":
        return f"This SQL was not run: {error}. Only one SELECT over this database's tables may run."
    if status == "timeout":
        return f"The query took too long and was stopped ({error}). Try a narrower query."
    if status == "error":
        return f"The database could not run this SQL: {error}"
    return ""
