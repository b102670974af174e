"""Running the ``btmount`` command: which one, and what its exit codes mean.

The package drives a mount through the CLI's documented ``--json`` outputs rather
than the control socket's internal protocol: the CLI already finds the mount's
socket, checks who owns it and turns paths into mount-relative ones, and its JSON
(``status --json`` schema 1, ``warm --json``, ``warm --check --json``) is the
interface btmount keeps stable.
"""

import json
import os
import shlex
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence

#: ``btmount warm``: the job ended without warming everything (did not fit, no data, …).
EXIT_INCOMPLETE = 2
#: ``btmount warm``: interrupted or cancelled.
EXIT_INTERRUPTED = 130


class BtmountError(Exception):
    """A btmount command failed; the message is its one-line error (``btmount: …``)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def command() -> List[str]:
    """The btmount command line to run: ``$BTMOUNT_CLI`` (split like a shell would), else ``btmount`` on PATH."""
    override = os.environ.get("BTMOUNT_CLI")
    if override:
        return shlex.split(override)
    found = shutil.which("btmount")
    if found is None:
        raise BtmountError("btmount: the btmount command is not on PATH (install it, or set BTMOUNT_CLI)")
    return [found]


def run(args: Sequence[str], stdin: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    """Runs ``btmount ARGS`` to completion, capturing its output (never raises on a non-zero exit)."""
    return subprocess.run(
        command() + list(args),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        check=False,
    )


def error_of(proc: "subprocess.CompletedProcess[str]") -> BtmountError:
    """The error a failed run reports: its last ``btmount:`` line on stderr, else all of stderr."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("btmount:")]
    message = said[-1] if said else ("\n".join(lines) or f"btmount exited with {proc.returncode}")
    return BtmountError(message, proc.returncode)


def run_json(args: Sequence[str], stdin: Optional[str] = None) -> Any:
    """Runs a command whose stdout is one JSON object; raises BtmountError when it fails."""
    proc = run(args, stdin)
    if proc.returncode != 0:
        raise error_of(proc)
    return json.loads(proc.stdout)


def json_lines(text: str) -> List[Dict[str, Any]]:
    """The JSON objects of a ``--json`` output, one per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def path_list(paths: Sequence["os.PathLike[str] | str"]) -> str:
    """Paths as a ``--from-list -`` text: one per line, in order."""
    lines = []
    for p in paths:
        text = os.fspath(p)
        if "\n" in text or "\r" in text:
            raise ValueError(f"btmount: a path with a line break cannot be passed in a list: {text!r}")
        if text == "":
            raise ValueError("btmount: an empty path (use '.' or no paths for the whole mount)")
        lines.append(text + "\n")
    return "".join(lines)
