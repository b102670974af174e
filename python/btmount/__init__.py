"""btmount from Python: warm a mount's cache, check it, read its status, warm the next epoch.

    import btmount
    btmount.warm("/data", ["train/"])                       # blocks until cached
    job = btmount.warm("/data", ["val/"], background=True)  # returns at once; job.wait()
    btmount.check("/data", ["train/"])["total"]["percent"]
    btmount.status("/data")["peers"]
    btmount.warm_epoch("/data", sampler, epoch + 1, dataset.paths)  # in a DataLoader loop

Standard library only; it runs the ``btmount`` command (``$BTMOUNT_CLI`` overrides which).
"""

from ._cli import BtmountError
from .epochs import epoch_order, warm_epoch, write_order
from .mount import WarmIncomplete, WarmJob, cancel, check, evict, status, warm

__all__ = [
    "BtmountError",
    "WarmIncomplete",
    "WarmJob",
    "cancel",
    "check",
    "epoch_order",
    "evict",
    "status",
    "warm",
    "warm_epoch",
    "write_order",
]
