"""The bottom layer: what every other layer may use and that uses nothing of sqlft: the error base class, cache
paths, port waiting, progress lines."""
