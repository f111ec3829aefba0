"""The serve defaults chosen by measurement (issue 26, benchmarks/serve_load.py --compare): one torch thread per
core whose OpenMP threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE), set before torch is imported."""

import os
import subprocess
import sys
from pathlib import Path

from serve.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_measured_ones():
    settings = Settings(demo_databases=False)
    assert settings.torch_threads == 0  # one per core
    assert settings.spin_wait is False
    assert settings.batching is True and settings.max_batch == 8


def run_serve_until_preflight(*flags: str, env: dict[str, str] | None = None, command: str = "serve.main") -> str:
    """`sqlft serve` in a fresh process, stopped at its preflight (after settings, before the model): prints the
    wait policy OpenMP saw when torch was imported ("not imported" if it is not yet) and the one now."""
    script = """
import os, sys
import importlib
import serve.main as serve_main
seen = {}

class Watch:  # records the environment at the moment torch is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in seen:
            seen["torch"] = os.environ.get("OMP_WAIT_POLICY", "unset")
        return None

sys.meta_path.insert(0, Watch())
serve_main.preflight = lambda settings: sys.exit(f"{seen.get('torch', 'not imported')}|"
                                                 f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}")
importlib.import_module(COMMAND).main(sys.argv[1:])
""".replace("COMMAND", repr(command))
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", script, "--no-demo-databases", *flags], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=120)
    return done.stderr.strip().splitlines()[-1]


# Since the model contract moved to sqlft.model.protocol (no torch), serve's modules no longer import torch before
# the preflight: "not imported" then means torch will load later, after the policy is in the environment.
def test_serve_sets_a_passive_wait_policy_before_torch_loads():
    seen_at_torch, now = run_serve_until_preflight().split("|")
    assert seen_at_torch in ("PASSIVE", "not imported") and now == "PASSIVE"


def test_spin_wait_and_the_environment_keep_the_library_default_or_the_users_choice():
    seen_at_torch, now = run_serve_until_preflight("--spin-wait").split("|")
    assert seen_at_torch in ("unset", "not imported") and now == "unset"
    assert run_serve_until_preflight(env={"OMP_WAIT_POLICY": "ACTIVE"}).split("|")[1] == "ACTIVE"
    # the fake backend loads no model: nothing to set
    assert run_serve_until_preflight("--backend", "fake").endswith("|unset")


def test_sqlft_mcp_sets_the_wait_policy_before_torch_loads_too():
    """`sqlft mcp` (serve.mcp_command) sets it before its preflight and before serve.mcp (torch) is imported."""
    seen_at_torch, now = run_serve_until_preflight(command="serve.mcp_command").split("|")
    assert seen_at_torch in ("PASSIVE", "not imported") and now == "PASSIVE"
    assert run_serve_until_preflight("--spin-wait", command="serve.mcp_command").endswith("|unset")
