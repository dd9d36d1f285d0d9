"""The real-mode canary test starts its own daphne processes, like tests/realmode/."""

from tests.realmode.conftest import realmode_env  # noqa: F401 - a fixture, used by name
