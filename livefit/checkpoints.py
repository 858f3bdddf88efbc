"""Finding the checkpoint to resume from: Flink writes ``<dir>/<job-id>/chk-<n>/_metadata``."""

from __future__ import annotations

from pathlib import Path


def latest_restore_point(checkpoint_dir: str | Path, savepoint_dir: str | Path) -> Path | None:
    """The newest completed checkpoint or savepoint (a graceful stop writes a savepoint; a crash
    leaves only checkpoints)."""
    candidates = [p for p in (latest_checkpoint(checkpoint_dir),) if p is not None]
    candidates += [m.parent for m in Path(savepoint_dir).glob("savepoint-*/_metadata")]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p / "_metadata").stat().st_mtime)


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The most recent completed checkpoint under ``checkpoint_dir`` (any job), or None.

    A checkpoint is complete once its ``_metadata`` file exists; Flink writes it last.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for job, n in (("a", 3), ("a", 12), ("b", 5)):
    ...     (d / job / f"chk-{n}").mkdir(parents=True)
    ...     _ = (d / job / f"chk-{n}" / "_metadata").write_bytes(b"x")
    >>> (d / "b" / "chk-99").mkdir()  # in progress: no _metadata yet
    >>> latest_checkpoint(d).name in ("chk-12", "chk-5")
    True
    """
    root = Path(checkpoint_dir)
    done = [m.parent for m in root.glob("*/chk-*/_metadata")]
    if not done:
        return None
    return max(done, key=lambda p: ((p / "_metadata").stat().st_mtime, int(p.name.split("-")[1])))
