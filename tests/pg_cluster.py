"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl on a free port, as an unprivileged user.

    with throwaway_cluster() as cluster:        # PostgresUnavailable when no server binary can be had
        cluster.psql("CREATE DATABASE shop")
        url = cluster.url("shop", user="reader")  # TCP 127.0.0.1, password auth (scram)

Run as root (CI containers), the server runs as Debian's `postgres` user with its data and socket folders in a
temporary folder given to that user; otherwise as the current user. Local (socket) connections trust the OS
user; TCP connections need a password, so the sandbox's role is tested with a real .pgpass / PGPASSWORD.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlft.core.net import free_port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binary (initdb/pg_ctl) on this machine, or no unprivileged user to run it."""


def server_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and psql of the newest installed server."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable("no PostgreSQL server binary (initdb) in /usr/lib/postgresql/*/bin or on PATH: "
                              "install it with `apt-get install -y postgresql`")


@dataclass
class Cluster:
    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    port: int
    os_user: str  # the OS user the server runs as; also its superuser role
    run_as: str | None  # None: the current user
    options: str = ""  # the server options it was started with (start() again after stop())

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        # psql and pg_ctl run as the server's user so that socket (peer/trust) logins work as its superuser.
        return subprocess.run(args, user=self.run_as, check=True, capture_output=True, text=True,
                              cwd=self.data_dir.parent, **kw)

    def psql(self, sql: str, db: str = "postgres", file: Path | None = None) -> str:
        """Run SQL (or a file) as the superuser over the socket; stops at the first error."""
        args = [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                "-p", str(self.port), "-U", self.os_user, "-d", db, "-At"]
        args += ["-f", str(file)] if file else ["-c", sql]
        return self._run(args).stdout

    def superuser_conninfo(self, db: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={self.os_user} dbname={db}"

    def url(self, db: str, user: str) -> str:
        """A password-less TCP URL: the password must come from PGPASSWORD, .pgpass or a service file."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start the server again after stop() (an outage that ends), on the same port and data."""
        subprocess.run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", self.options, "-l",
                        str(self.data_dir.parent / "log"), "-w", "-t", "60", "start"], user=self.run_as, check=True,
                       capture_output=True, cwd=self.data_dir.parent)

    def stop(self) -> None:
        subprocess.run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                       user=self.run_as, capture_output=True, cwd=self.data_dir.parent)


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    bin_dir = server_bin_dir()
    run_as = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no `postgres` user to run the server as "
                                      "(Debian's postgresql package creates it)") from None
        run_as = "postgres"
    os_user = run_as or pwd.getpwuid(os.geteuid()).pw_name
    root = Path(tempfile.mkdtemp(prefix="sqlft-pg-"))
    cluster = None
    try:
        data_dir, socket_dir = root / "data", root / "socket"
        socket_dir.mkdir()
        if run_as:
            entry = pwd.getpwnam(run_as)
            for path in (root, socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(root, 0o755)  # the test process (root) reads nothing in it; the server owns it
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", os_user, "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
                       user=run_as, check=True, capture_output=True, cwd=root)
        port = free_port()
        options = (f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=40 -c shared_buffers=16MB")
        cluster = Cluster(bin_dir, data_dir, socket_dir, port, os_user, run_as, options)
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(root / "log"),
                        "-w", "-t", "60", "start"], user=run_as, check=True, capture_output=True, cwd=root)
        yield cluster
    except subprocess.CalledProcessError as err:
        log = root / "log"
        raise RuntimeError(f"PostgreSQL cluster setup failed: {err.stderr or err.stdout}"
                           + (f"\n{log.read_text()[-2000:]}" if log.is_file() else "")) from err
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
