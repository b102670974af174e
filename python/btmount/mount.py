"""What training code asks a mount: warm paths, check the cache, read its status.

Paths are as ``btmount warm`` takes them: relative to the mount root, or absolute
paths under the mountpoint. They always go to the CLI as a list on stdin (never
as arguments), so an epoch of a million files does not hit the argument limit.
"""

import os
import time
from typing import Any, Dict, Optional, Sequence, Union

from ._cli import EXIT_INCOMPLETE, EXIT_INTERRUPTED, BtmountError, error_of, json_lines, path_list, run, run_json

PathLike = Union[str, "os.PathLike[str]"]

#: Job states after which a warm job changes no more.
FINISHED_STATES = ("complete", "partial", "failed", "cancelled")


class WarmIncomplete(BtmountError):
    """A warm job ended without everything asked for being cached (``btmount warm`` exit 2 or 130).

    ``job`` is its final state, as in ``status(mount)["warm"]``: ``state``, ``message``,
    ``notFitting`` and ``missing`` say what was not warmed and why.
    """

    def __init__(self, message: str, job: Optional[Dict[str, Any]], exit_code: int) -> None:
        super().__init__(message, exit_code)
        self.job = job


class WarmJob:
    """A warm job the mount's daemon runs; ``info`` is its state when last seen (a ``status()["warm"]`` entry)."""

    def __init__(self, mount: PathLike, info: Dict[str, Any]) -> None:
        self.mount = os.fspath(mount)
        self.info = info

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def state(self) -> str:
        return str(self.info["state"])

    @property
    def done(self) -> bool:
        return self.state in FINISHED_STATES

    def refresh(self) -> Dict[str, Any]:
        """Reads the job's state from the mount's status (a finished job stays listed for a while)."""
        for job in status(self.mount)["warm"]:
            if job["id"] == self.id:
                self.info = job
                return job
        raise BtmountError(f"btmount: warm job {self.id} is no longer listed by {self.mount}")

    def wait(self, timeout: Optional[float] = None, poll: float = 1.0) -> Dict[str, Any]:
        """Waits until the job has finished and returns its final state.

        Raises WarmIncomplete if it did not warm everything, TimeoutError after ``timeout`` seconds.
        Each poll runs ``btmount status`` (a short Node process), hence once a second by default.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"warm job {self.id} on {self.mount} still running after {timeout} s")
            time.sleep(poll)
            self.refresh()
        if self.state != "complete":
            raise WarmIncomplete(f"btmount: warm job {self.id} ended {self.state}: {self.info.get('message')}", self.info, EXIT_INCOMPLETE)
        return self.info

    def __repr__(self) -> str:
        files = self.info.get("files", {})
        return f"<WarmJob {self.id} on {self.mount}: {self.state}, {files.get('done')}/{files.get('total')} files>"


def warm(mount: PathLike, paths: Optional[Sequence[PathLike]] = None, background: bool = False,
         stall_timeout: Optional[float] = None) -> Union[Dict[str, Any], WarmJob]:
    """Fetches ``paths`` (files or folders; None = the whole mount) into the cache, in that order.

    In the foreground, returns the finished job (a dict as in ``status()["warm"]``) once every
    byte is cached and verified, and raises WarmIncomplete when the job ended short (the cache
    cannot hold it all, no data arrived for ``stall_timeout`` seconds, …). With
    ``background=True``, returns a WarmJob at once: the daemon runs it while training reads.
    """
    args = ["warm", os.fspath(mount), "--json"]
    stdin = None
    if paths is not None:
        if len(paths) == 0:
            raise ValueError("btmount: warm got an empty list of paths (pass None for the whole mount)")
        args += ["--from-list", "-"]
        stdin = path_list(paths)
    if background:
        args.append("--background")
    if stall_timeout is not None:
        args += ["--stall-timeout", str(stall_timeout)]
    proc = run(args, stdin)
    events = json_lines(proc.stdout) if proc.stdout.strip() else []
    last = events[-1] if events else None
    if proc.returncode in (EXIT_INCOMPLETE, EXIT_INTERRUPTED) and last is not None:
        raise WarmIncomplete(error_of(proc).args[0], _job_of(last), proc.returncode)
    if proc.returncode != 0:
        raise error_of(proc)
    if last is None:
        raise BtmountError("btmount: warm printed no job")
    job = _job_of(last)
    return WarmJob(mount, job) if background else job


def _job_of(event: Dict[str, Any]) -> Dict[str, Any]:
    """A ``warm --json`` event without its ``event`` key: the job's fields."""
    return {k: v for k, v in event.items() if k != "event"}


def status(mount: PathLike) -> Dict[str, Any]:
    """``btmount status MOUNT --json``: peers, rates, cache, reads, warm jobs (schema 1, in the README)."""
    return run_json(["status", os.fspath(mount), "--json"])


def check(mount: PathLike, paths: Optional[Sequence[PathLike]] = None) -> Dict[str, Any]:
    """How much of each path is cached, fetching nothing.

    Returns ``{"paths": [{"path", "kind", "files", "filesCached", "bytes", "cachedBytes",
    "percent"}, …], "total": {…}}`` in the order given (None = the whole mount).
    """
    args = ["warm", os.fspath(mount), "--check", "--json"]
    stdin = None
    if paths is not None:
        if len(paths) == 0:
            raise ValueError("btmount: check got an empty list of paths (pass None for the whole mount)")
        args += ["--from-list", "-"]
        stdin = path_list(paths)
    return run_json(args, stdin)


def evict(mount: PathLike, paths: Sequence[PathLike]) -> Dict[str, Any]:
    """Drops the paths from the cache; returns ``{"files", "pieces", "bytes", "pinnedPieces"}``.

    Pieces a read is using right now stay (``pinnedPieces``); that is not an error here.
    """
    proc = run(["warm", os.fspath(mount), "--evict", "--json", "--from-list", "-"], path_list(paths))
    if proc.returncode not in (0, EXIT_INCOMPLETE) or not proc.stdout.strip():
        raise error_of(proc)
    return json_lines(proc.stdout)[-1]


def cancel(mount: PathLike) -> Sequence[int]:
    """Stops the mount's running warm jobs; returns the ids of those it stopped."""
    return run_json(["warm", os.fspath(mount), "--cancel", "--json"])["cancelled"]
