from tests.integration.conftest import pytest_collection_modifyitems  # noqa: F401 - same engine check
