"""Weights & Biases tracking: offline by default, online only when a key is configured.

W&B is the dashboard users watch; the results file (results.jsonl) is the record
tests and tools read. The mode follows ``WANDB_MODE`` when set, else "online" when
an API key is configured (``WANDB_API_KEY``) and "offline" otherwise, so no run ever
blocks on a login prompt or the network. ``wandb sync <run dir>/wandb`` uploads an
offline run later.

Nothing secret reaches W&B: the logged config is the TrainConfig with every value
whose key looks like a credential replaced, and W&B's own collection of the
environment, the command line and the code is switched off.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token|password|passphrase|credential)", re.I)


def wandb_mode() -> str:
    """ "online" with a configured key, "offline" otherwise (WANDB_MODE overrides)."""
    explicit = os.environ.get("WANDB_MODE")
    if explicit:
        return explicit
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def redact(value: Any) -> Any:
    """A copy of nested mappings/lists with credential-like keys' values replaced."""
    if isinstance(value, Mapping):
        return {
            k: "<redacted>" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class Tracker:
    """One W&B run per training run folder (resumed with the same id on --resume)."""

    def __init__(
        self,
        run_dir: Path,
        project: str,
        config: Mapping[str, Any],
        group: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        import wandb

        id_file = run_dir / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        self.run = wandb.init(
            project=project,
            name=run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            group=group,
            tags=list(tags),
            mode=wandb_mode(),
            config=redact(dict(config)),
            settings=wandb.Settings(
                console="off", save_code=False, disable_git=True, x_disable_stats=True,
                x_disable_meta=True, silent=True,
            ),
        )

    @property
    def directory(self) -> Path:
        """The run's local files (offline runs: what `wandb sync` uploads)."""
        return Path(self.run.dir).parent

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def summary(self, values: Mapping[str, Any]) -> None:
        self.run.summary.update(dict(values))

    def finish(self) -> None:
        self.run.finish()
