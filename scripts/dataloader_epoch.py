#!/usr/bin/python3
"""One PyTorch DataLoader epoch over an image-like folder, as a training job reads it.

    dataloader_epoch.py DATA_ROOT [--reference DIR] [--workers 4] [--epochs 1] [--json]

Every file under DATA_ROOT is a sample (class = its parent folder). Workers read
the files with ordinary open()/read(); the main process receives each sample as a
uint8 tensor. With --reference, every sample is compared with the same file under
DIR. Prints a summary (or one JSON line per epoch with --json) and exits 1 on any
mismatch. Uses only torch and the standard library.
"""
import argparse
import hashlib
import json
import os
import sys
import time
import warnings

import torch
from torch.utils.data import DataLoader, Dataset


class FolderDataset(Dataset):
    def __init__(self, root):
        self.root = root
        self.files = sorted(
            os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names
        )
        self.classes = sorted({os.path.dirname(f) for f in self.files})

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        rel = self.files[i]
        with open(os.path.join(self.root, rel), "rb") as f:
            data = f.read()
        tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        return tensor, self.classes.index(os.path.dirname(rel)), i


def collate(batch):
    return batch  # samples differ in size, like JPEGs before decoding


def main():
    # On a 2-core machine torch warns about 4 workers; the test asks for 4 on purpose.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--reference")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ds = FolderDataset(args.root)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, collate_fn=collate)
    bad = 0
    for epoch in range(1, args.epochs + 1):
        started = time.monotonic()
        samples = 0
        nbytes = 0
        for batch in loader:
            for tensor, _label, i in batch:
                samples += 1
                nbytes += tensor.numel()
                if args.reference:
                    with open(os.path.join(args.reference, ds.files[i]), "rb") as f:
                        expected = f.read()
                    if hashlib.sha256(tensor.numpy().tobytes()).digest() != hashlib.sha256(expected).digest():
                        bad += 1
                        print(f"MISMATCH {ds.files[i]}", file=sys.stderr)
        seconds = time.monotonic() - started
        result = {"epoch": epoch, "samples": samples, "bytes": nbytes, "seconds": round(seconds, 3), "mismatches": bad}
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            rate = nbytes / seconds / 1048576 if seconds > 0 else 0
            print(f"epoch {epoch}: {samples} samples, {nbytes / 1048576:.1f} MiB in {seconds:.2f} s ({rate:.1f} MiB/s, {samples / seconds:.0f} samples/s), {bad} mismatches", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
