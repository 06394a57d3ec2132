import signal

import pytest

collect_ignore_glob = [
    "**/.ipynb_checkpoints/*",
    "fixtures/*",  # throwaway notebooks for the browser/exercise/student-copy tests, never run by nbval
]


@pytest.fixture
def within():
    """within(seconds, call): call() under an alarm, so a loop without bound fails instead of hanging the run."""
    def run(seconds, call):
        def too_slow(signum, frame):
            raise TimeoutError(f"no answer within {seconds} s")

        previous = signal.signal(signal.SIGALRM, too_slow)
        signal.alarm(seconds)
        try:
            return call()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return run
