from tests.integration.conftest import pytest_runtest_setup  # noqa: F401 - the same engine check: fail or skip
