"""The throwaway PostgreSQL server the PostgreSQL tests share (session-scoped; imported by tests/conftest.py).

`shop` holds a few tables, a schema `sales`, a table `secrets` nobody is granted, and a role `reader` with SELECT on
the rest (its password from a .pgpass file, never a URL). `superuser_url` connects as the cluster's superuser.
Skipped, with the reason, only where no PostgreSQL server binary can be had (.ci/run installs Debian's).
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pg_cluster import Cluster, PostgresUnavailable, throwaway_cluster

PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]  # must never show up in any message
SHOP = """
CREATE SCHEMA sales;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, "Signup Date" date);
COMMENT ON TABLE customers IS 'People who bought something';
COMMENT ON COLUMN customers.name IS 'Full name, as typed */ by them';
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2),
                     status varchar(20));
CREATE TABLE big (n int);
CREATE TABLE sales.targets (region text, year int, amount double precision, PRIMARY KEY (region, year));
CREATE TABLE secrets (token text);
INSERT INTO customers VALUES (1, 'Ann', '2024-01-05'), (2, 'Bob', '2024-02-10'), (3, 'Cy', NULL);
INSERT INTO orders (customer_id, total, status) VALUES (1, 9.50, 'paid'), (1, 20, 'paid'), (2, 3.25, 'open');
INSERT INTO big SELECT generate_series(1, 1000);
INSERT INTO sales.targets VALUES ('north', 2024, 1.5), ('south', 2024, 2.5);
INSERT INTO secrets VALUES ('do-not-read');
CREATE ROLE reader LOGIN PASSWORD '{password}';
GRANT USAGE ON SCHEMA sales TO reader;
GRANT SELECT ON customers, orders, big, sales.targets TO reader;
"""


@contextmanager
def cluster_or_skip() -> Iterator[Cluster]:
    """A throwaway cluster, or the test skipped (with the reason) where no PostgreSQL server can be had."""
    try:
        context = throwaway_cluster()
        server = context.__enter__()
    except PostgresUnavailable as err:
        pytest.skip(f"no PostgreSQL server: {err}")
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


def write_pgpass(folder: Path, cluster: Cluster, logins: dict[str, str]) -> Path:
    """A .pgpass file giving each role (role -> password) its password on `cluster`: never in a URL."""
    pgpass = folder / "pgpass"
    pgpass.write_text("".join(f"127.0.0.1:{cluster.port}:*:{role}:{password}\n" for role, password in logins.items()))
    pgpass.chmod(0o600)
    return pgpass


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with cluster_or_skip() as server:
        server.psql("CREATE DATABASE shop")
        server.psql(SHOP.format(password=PASSWORD), db="shop")
        try:
            server.psql("CREATE EXTENSION dblink", db="shop")  # postgresql-contrib: a real dblink to refuse
        except Exception:
            pass
        # The reader's password comes from a .pgpass file, as the README recommends; never from the URL.
        pgpass = write_pgpass(tmp_path_factory.mktemp("pgpass"), server, {"reader": PASSWORD})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PGPASSFILE", str(pgpass))
            mp.delenv("PGPASSWORD", raising=False)
            yield server


@pytest.fixture(scope="session")
def reader_url(cluster) -> str:
    return cluster.url("shop", "reader")


@pytest.fixture(scope="session")
def superuser_url(cluster) -> str:
    # Over the socket, trusted: the role may do anything, so only sqlft's own layers stand in the way.
    return f"postgresql://{cluster.os_user}@/shop?host={cluster.socket_dir}&port={cluster.port}"
