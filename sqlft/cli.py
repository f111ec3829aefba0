"""The `sqlft` command: a thin dispatcher to each stage's own main().

    sqlft train CONFIG [k=v ...] [--resume]     fine-tune (sqlft.commands.train)
    sqlft merge RUN                              merge the adapter into a 16-bit model (sqlft.training.merge)
    sqlft eval ...                               execution accuracy on each database's engine (eval.run); `eval compare A B`
    sqlft ask MODEL [QUESTION ...] --schema DDL  questions (or --questions FILE, stdin, a prompt) -> SQL (sqlft.commands.ask)
    sqlft serve [MODEL]                          HTTP API, POST /sql (serve.main)
    sqlft mcp [MODEL]                            the databases as MCP tools for agents (serve.mcp_command)
    sqlft ui                                     Streamlit page over the API (ui.main)
    sqlft quickstart                             train + merge + eval on the embedded default (sqlft.commands.quickstart)
    sqlft info                                   versions, device, cache locations
    sqlft config import FILE [--out OUT.yaml]    a sqlft config from an axolotl or LLaMA-Factory config

`sqlft COMMAND --help` shows a command's options.
"""

import importlib
import sys

COMMANDS = {
    "train": "sqlft.commands.train",
    "merge": "sqlft.training.merge",
    "eval": "eval.run",
    "ask": "sqlft.commands.ask",
    "serve": "serve.main",
    "mcp": "serve.mcp_command",
    "ui": "ui.main",
    "quickstart": "sqlft.commands.quickstart",
    "info": "sqlft.commands.info",
    "config": "sqlft.commands.config_import",
}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        sys.exit(f"sqlft: unknown command '{command}'.{hint} Commands: {', '.join(COMMANDS)}")
    importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    main()
