"""`sqlft mcp`: options and checks before anything heavy loads, then the MCP server (serve/mcp.py).

The OpenMP wait policy must be in the environment before torch is imported (serve.settings.apply_wait_policy):
serve/mcp.py imports the serve stack, torch included, so this light module reads the settings first, as
serve/main.py does for `sqlft serve`.
"""

import sys

from serve.main import parse_settings as parse_serve_settings
from serve.main import preflight
from serve.settings import MCPSettings


def parse_settings(argv: list[str] | None = None) -> MCPSettings:
    """Settings from flags and environment (serve.main.parse_settings' rules); every problem listed at once."""
    return parse_serve_settings(argv, MCPSettings, "sqlft mcp")


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    settings.apply_wait_policy()  # before anything imports torch (the preflight's model checks may)
    try:  # serve's checks before anything loads (model folder, template, database files and URLs), all at once
        preflight(settings)
    except SystemExit as e:
        sys.exit(str(e.code).replace("sqlft serve:", "sqlft mcp:", 1))
    from serve.mcp import run
    run(settings)


if __name__ == "__main__":
    main()
