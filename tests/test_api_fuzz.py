"""Property-based testing of the HTTP API from its own OpenAPI schema (schemathesis), over real HTTP (uvicorn),
with the fake model and a real SQLite database behind it: whatever the generated request, no 5xx, and every error
comes in the one error body {"error": {"code", "message", "detail"}} (issue 24).

A bounded number of cases per operation keeps it to seconds in CI; SQLFT_API_FUZZ_CASES raises it.
"""

import os
import sqlite3

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from serve.app import create_app
from serve.settings import Settings
from serve.testing import FakeBackend, running_server

CASES = int(os.environ.get("SQLFT_API_FUZZ_CASES", "12"))
KEY = "fuzz-key"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-fuzz")
    path = folder / "concert.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INT)")
        con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 30), (2, "Bob", 41)])
    app = create_app(Settings(backend="fake", demo_databases=False, database=[f"concert={path}"],
                              data_dir=str(folder / "data"), execute_timeout=1, request_timeout=20),
                     load_backend=lambda s: FakeBackend())
    with running_server(app) as url:
        app.state.sqlft.settings.api_key = KEY
        yield url


def operations(url: str) -> list:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers={"X-API-Key": KEY})
    return [result.ok() for result in schema.get_all_operations()]


def test_no_5xx_and_one_error_body(api_url):
    """Each operation of the OpenAPI schema, CASES generated requests each (schemathesis' strategies, driven by
    hypothesis directly: its pytest plugin does not load under this pytest)."""
    checked = []
    for operation in operations(api_url):

        @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case) -> None:
            response = case.call(base_url=api_url, headers={"X-API-Key": KEY}, timeout=30)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and {"code", "message", "detail"} <= set(body["error"]), where
                assert isinstance(body["error"]["message"], str) and body["error"]["message"], where
            checked.append(response.status_code)

        check()
    assert len(checked) >= CASES, "the schema gave no operation to test"
    print(f"{len(checked)} requests: " + ", ".join(f"{c}: {checked.count(c)}" for c in sorted(set(checked))))
