"""fleetwarden's test and benchmark harness: development only, never in the product's wheel.

tests/ and benchmarks/ both import it (benchmarks never import tests/). `scripts/setup-venv.sh` installs it,
editable, into the development venv.
"""
