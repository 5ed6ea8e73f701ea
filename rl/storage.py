"""Where runs are kept beyond the machine that trained them: a local or shared path, or a
cloud URI (s3://, gs://, abfs://, ... anything pyarrow.fs resolves; Tune uses the same).

Training writes its run folder locally (checkpoints are renamed into place atomically
there) and ``mirror`` copies it to the storage path after each checkpoint, so a run on a
cluster whose head node goes away still has its checkpoints. Tune gets the storage path
directly as ``RunConfig(storage_path=...)``: on a multi-node cluster Tune needs it
(trials checkpoint on worker nodes), and for a URI the best checkpoint of each phase is
downloaded next to the run before the next phase starts from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def _resolve(location: str):
    import pyarrow.fs as pafs

    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def mirror(local_dir: Path, destination: str) -> str:
    """Copy ``local_dir`` (recursively) to ``destination``; returns where it went.

    Files are overwritten, nothing is deleted at the destination (an old checkpoint that
    the local run pruned stays there). Symlinks (``checkpoints/final``) are not followed;
    each is written as a text file holding its target, named in upper case
    (``checkpoints/FINAL``), since object stores have no links.
    """
    import os

    import pyarrow.fs as pafs

    fs, root = _resolve(destination)
    local = pafs.LocalFileSystem()
    base = local_dir.resolve()
    for folder, dirs, files in os.walk(base, followlinks=False):
        rel = Path(folder).relative_to(base).as_posix()
        target = root if rel == "." else f"{root}/{rel}"
        fs.create_dir(target, recursive=True)
        for name in [*files, *(d for d in dirs if (Path(folder) / d).is_symlink())]:
            source = Path(folder) / name
            if source.is_symlink():
                with fs.open_output_stream(f"{target}/{name.upper()}") as f:
                    f.write(str(source.readlink()).encode())
            else:
                pafs.copy_files(str(source), f"{target}/{name}",
                                source_filesystem=local, destination_filesystem=fs)
    log.info("mirrored %s to %s", local_dir, destination)
    return destination


def read_text(location: str) -> str | None:
    """A small text file at a path or URI, or None when it is not there."""
    import pyarrow.fs as pafs

    fs, path = _resolve(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()
