# Benchmarks are scripts, run by hand (see README.md); pytest must not collect or import them.
# (test/bench is a package so this file is "bench.conftest", not a second top-level "conftest".)
collect_ignore_glob = ["*.py"]
