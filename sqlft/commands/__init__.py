"""Commands that are neither `sqlft eval` (eval/) nor the server (serve/, ui/): quickstart, ask, info, train,
config import. Each module's main(argv) is what `sqlft COMMAND` runs."""
