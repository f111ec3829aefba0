"""One error base class (sqlft.core.errors.SqlftError): every error a user can see derives from it, so each command's
main() exits with the message by catching that one class, and a new error class cannot be forgotten there."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Raised and handled inside one place, never shown as they are: serve turns them into HTTP answers, and
# sqlft.data.formats turns _Bad into a Problem of that record.
INTERNAL = {"ApiError", "PromptTooLong", "BatcherClosed", "BodyTooLarge", "_Bad"}


def class_bases() -> dict[str, list[str]]:
    """Every class defined in sqlft/, eval/ and serve/: name -> its bases' names as written."""
    found = {}
    for package in ("sqlft", "eval", "serve"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    found[node.name] = [ast.unparse(base).split(".")[-1] for base in node.bases]
    return found


def ancestors(name: str, bases: dict[str, list[str]]) -> set[str]:
    """The class's bases, and theirs, by name (builtins end the walk)."""
    seen, todo = set(), list(bases.get(name, []))
    while todo:
        base = todo.pop()
        if base not in seen:
            seen.add(base)
            todo += bases.get(base, [])
    return seen


def test_every_error_a_user_sees_is_a_sqlft_error():
    bases = class_bases()
    errors = {name for name in bases
              if any(a == "Exception" or a.endswith("Error") for a in ancestors(name, bases))} - {"SqlftError"}
    assert len(errors) > 10, errors  # the scan found them
    stray = sorted(name for name in errors - INTERNAL if "SqlftError" not in ancestors(name, bases))
    assert not stray, f"derive these from sqlft.core.errors.SqlftError (or add them to INTERNAL, saying why): {stray}"


def test_sqlft_errors_keep_their_builtin_base():
    from sqlft.config import ConfigError
    from sqlft.config.run_folder import NotARunError
    from sqlft.core.errors import SqlftError
    from sqlft.data.errors import DataError
    from sqlft.sql.postgres import PrivilegedRole, SourceUnavailable

    # Callers that catch ValueError, RuntimeError or FileNotFoundError around library calls still catch them.
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(PrivilegedRole, ValueError) and issubclass(SourceUnavailable, RuntimeError)
    assert issubclass(NotARunError, FileNotFoundError)
    assert all(issubclass(e, SqlftError) for e in (ConfigError, NotARunError, DataError, PrivilegedRole))
