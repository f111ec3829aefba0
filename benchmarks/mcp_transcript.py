"""A transcript of an MCP client calling each tool of `sqlft mcp`, as an agent would: the SDK's own client
(ClientSession over stdio_client) starts the server process, lists the tools and calls each one.

    python benchmarks/mcp_transcript.py                         # the embedded SmolLM2 model, one SQLite database
    python benchmarks/mcp_transcript.py --fake --out mcp.md     # serve's fake model (no model load)

The database is a small shop built in a temporary folder (customers, orders with a foreign key).
"""

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parents[1]

SHOP = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total REAL, placed DATE);
INSERT INTO customers VALUES (1, 'Ada', 'Paris'), (2, 'Bo', 'Lyon'), (3, 'Cy', 'Paris');
INSERT INTO orders VALUES (1, 1, 10.5, '2024-01-02'), (2, 1, 3.0, '2024-02-03'), (3, 2, 7.25, '2024-03-04');
"""

CALLS = [
    ("list_databases", {}),
    ("describe_schema", {"database": "shop"}),
    ("question_to_sql", {"question": "How many customers live in Paris?", "database": "shop", "execute": True,
                         "repair": True}),
    ("question_to_sql", {"question": "What is the total of all orders?", "database": "shop", "vote": True,
                         "candidates": 3, "execute": True}),
    ("execute_sql", {"database": "shop", "sql": "SELECT c.name, SUM(o.total) AS spent FROM customers c "
                     "JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY spent DESC"}),
    ("execute_sql", {"database": "shop", "sql": "DELETE FROM orders"}),
    ("execute_sql", {"database": "warehouse", "sql": "SELECT 1"}),
]


def shown(value, limit: int = 1500) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


async def transcript(flags: list[str]) -> list[str]:
    lines = [f"$ {Path(sys.executable).name} -m serve.mcp_command {' '.join(flags)}   (started by the client, stdio)"]
    params = StdioServerParameters(command=sys.executable, args=["-m", "serve.mcp_command", *flags], cwd=ROOT)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        started = time.perf_counter()
        init = await session.initialize()
        lines.append(f"initialize -> server {init.server_info.name} {init.server_info.version}, protocol "
                     f"{init.protocol_version} ({time.perf_counter() - started:.1f} s)")
        tools = await session.list_tools()
        lines.append("tools/list -> " + ", ".join(t.name for t in tools.tools))
        for name, arguments in CALLS:
            started = time.perf_counter()
            result = await session.call_tool(name, arguments, read_timeout_seconds=600)
            took = time.perf_counter() - started
            lines.append(f"\n> {name} {json.dumps(arguments, ensure_ascii=False)}")
            body = result.structured_content if result.structured_content is not None else \
                "\n".join(getattr(block, "text", "") for block in result.content)
            marker = "ERROR " if result.is_error else ""
            lines.append(f"< {marker}({took:.2f} s)")
            if result.is_error:  # the text the agent reads; the structured body, if any, follows
                lines.append("  " + "\n".join(getattr(block, "text", "") for block in result.content))
            if result.structured_content is not None or not result.is_error:
                lines.append(shown(body))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fake", action="store_true", help="serve's fake model instead of the embedded one")
    parser.add_argument("--out", help="also write the transcript to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        shop = Path(folder) / "shop.sqlite"
        with sqlite3.connect(shop) as con:
            con.executescript(SHOP)
        con.close()
        flags = ["--no-demo-databases", f"--database=shop={shop}", "--threads", "1", "--execute-workers", "1",
                 "--log-level", "warning"] + (["--backend", "fake"] if args.fake else [])
        lines = anyio.run(transcript, flags)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
