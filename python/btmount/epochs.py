"""Warming the next epoch while this one trains.

A sampler's order is fixed by its seed and the epoch, so during epoch N the files
epoch N+1 will read are known; warming them in that order, in the background,
means the next epoch finds them cached even when the swarm is slow or gone.
"""

import copy
import os
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

from .mount import PathLike, WarmJob, warm

#: A sampler with ``set_epoch`` (DistributedSampler), or a function epoch → indices.
SamplerLike = Union[Any, Callable[[int], Iterable[int]]]
#: The dataset's sample paths by index (``dataset.paths``), or a function index → path
#: (ImageFolder: ``lambda i: dataset.samples[i][0]``).
SamplePaths = Union[Sequence[PathLike], Callable[[int], PathLike]]


def epoch_order(sampler: SamplerLike, epoch: int) -> List[int]:
    """The sample indices ``sampler`` yields in ``epoch``, leaving ``sampler`` itself as it was.

    A sampler with ``set_epoch`` (DistributedSampler) is copied and the copy set to
    ``epoch``, so the training loop's sampler keeps its own epoch. A sampler whose order
    does not depend on an epoch number (RandomSampler) cannot be asked for a future order:
    pass a function instead, e.g. ``lambda e: RandomSampler(ds, generator=torch.Generator().manual_seed(seed + e))``,
    and give the training loop the same sampler for each epoch.
    """
    if hasattr(sampler, "set_epoch"):
        future = copy.copy(sampler)
        future.set_epoch(epoch)
        return [int(i) for i in future]
    if callable(sampler):
        return [int(i) for i in sampler(epoch)]
    raise TypeError(
        "btmount: epoch_order needs a sampler with set_epoch (DistributedSampler) or a function epoch -> indices, "
        f"not {type(sampler).__name__}"
    )


def write_order(path: PathLike, names: Sequence[PathLike]) -> None:
    """Writes an epoch's file order, one path per line (what ``btmount warm --from-list`` reads)."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(os.fspath(n) + "\n" for n in names)


def warm_epoch(mount: PathLike, sampler: SamplerLike, epoch: int, paths: SamplePaths,
               list_file: Optional[PathLike] = None, stall_timeout: Optional[float] = None) -> WarmJob:
    """Starts warming, in the background, the files ``sampler`` will read in ``epoch``, in that order.

    Call it at the start of epoch N with ``epoch=N + 1``; it returns at once with the job
    (``job.wait()`` blocks until it is done, ``btmount status`` shows it). ``list_file``
    also keeps the order on disk. Files of the other ranks are not fetched.
    """
    order = epoch_order(sampler, epoch)
    name_of = paths if callable(paths) else paths.__getitem__
    names = [os.fspath(name_of(i)) for i in order]
    if list_file is not None:
        write_order(list_file, names)
    job = warm(mount, names, background=True, stall_timeout=stall_timeout)
    assert isinstance(job, WarmJob)
    return job
