# The fake assignment uses the real fixtures: the engine is what is under test.
from autograder.checks.conftest import *  # noqa: F401,F403
