"""Run the `quantum` command as a user does: a real subprocess with a wide, plain console."""

import os
import subprocess
import sys


def quantum(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m quantum ARGS` without RAY_ADDRESS (tests use local Ray), W&B offline."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"COLUMNS": "250", "NO_COLOR": "1", "WANDB_MODE": "offline"})
    return subprocess.run(
        [sys.executable, "-m", "quantum", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
