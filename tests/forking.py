"""The parent's end of the fork tests' scripts (tests/integration/test_fork*.py).

Each script forks a child that uses the backend, then waits for it here: the child's exit code,
or 3 when it hangs (a lock held at the fork that the child was never given afresh), killed.
"""

from __future__ import annotations

import textwrap


def reap_child(seconds: int, hung: str) -> str:
    """Script lines that wait ``seconds`` for the child ``pid``, then exit with its code (or 3)."""
    return textwrap.dedent(
        f"""
        deadline = time.monotonic() + {seconds}
        while time.monotonic() < deadline:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                done.set()
                sys.exit(os.waitstatus_to_exitcode(status))
            time.sleep(0.05)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print({hung!r}, file=sys.stderr)
        sys.exit(3)
        """
    )
