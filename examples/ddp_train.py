"""Train the digits MLP with SAM under DistributedDataParallel (DDP).

Launch with torchrun (2 processes on this machine; gloo on CPU, nccl on GPUs where present;
``--standalone`` lets torchrun pick a free local port for its rendezvous)::

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --ascent global

or as a single process, without DDP: ``python examples/ddp_train.py``. Every worker reads its
own shard of each batch (``DistributedSampler``); ``sampy.torch.distributed.ddp_sam_step``
runs the SAM step: with ``--ascent per_worker`` (the default, m-sharpness with m = the
per-worker batch, as in the SAM paper) the first forward/backward runs inside
``model.no_sync()`` and each worker perturbs with its own gradient (1 all-reduce per step,
like plain DDP); with ``--ascent global`` both passes are all-reduced and all workers perturb
with the full-batch gradient (2 all-reduces per step). Needs scikit-learn for
``sklearn.datasets.load_digits`` (1,797 8×8 images, 10 classes; shipped with scikit-learn, no
download).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import sampy.torch as st
from sampy.torch.distributed import ASCENT_MODES, ddp_sam_step, ddp_step_plan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="examples per worker")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ascent", choices=ASCENT_MODES, default="per_worker")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend", choices=("auto", "gloo", "nccl"), default="auto", help="auto: nccl on GPUs"
    )
    return parser.parse_args(argv)


def load_digits_split(seed: int) -> tuple[torch.Tensor, ...]:
    """The digits, pixels scaled to [0, 1], split 80/20 by a seeded permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit(
            "examples/ddp_train.py needs scikit-learn for sklearn.datasets.load_digits: "
            "pip install scikit-learn (requirements.txt pins it; `make test` installs it)"
        )
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = len(x) // 5
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def setup(backend: str) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; joins the process group when launched by torchrun."""
    if "WORLD_SIZE" not in os.environ:  # plain `python examples/ddp_train.py`
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rank, world, device = setup(args.backend)
    distributed = dist.is_initialized()
    x_train, y_train, x_test, y_test = load_digits_split(args.seed)

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP broadcasts anyway)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    model = model.to(device)
    if distributed:
        model = DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )
    optimizer = st.SAM(
        model.parameters(), torch.optim.SGD, rho=args.rho, lr=args.lr, momentum=args.momentum
    )

    train = TensorDataset(x_train, y_train)
    # drop_last on both: every worker takes the same number of equal-sized batches, so the
    # average of the per-worker mean gradients is the mean over the global batch.
    sampler = (
        DistributedSampler(train, shuffle=True, seed=args.seed, drop_last=True)
        if distributed
        else None
    )
    loader = DataLoader(
        train, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=True
    )
    plan = ddp_step_plan(optimizer, args.ascent)
    if rank == 0:
        print(
            f"{world} worker(s), backend {dist.get_backend() if distributed else 'none'}, "
            f"device {device}; SAM rho={args.rho}, ascent={args.ascent}: {plan.passes} passes "
            f"and {plan.all_reduces if distributed else 0} gradient all-reduce(s) per step; "
            f"global batch {args.batch_size * world}",
            flush=True,
        )

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        total = torch.zeros(2, device=device)  # (sum of losses, batches), kept on the device
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = ddp_sam_step(
                optimizer,
                model,
                lambda xb=xb, yb=yb: F.cross_entropy(model(xb), yb),
                ascent=args.ascent,
            )
            total += torch.stack([loss, torch.ones((), device=device)])
        if distributed:
            dist.all_reduce(total)  # one small all-reduce per epoch, for the log only
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test.to(device)).argmax(1) == y_test.to(device)).float().mean()
        if rank == 0:
            print(
                f"epoch {epoch:2d}  train loss {(total[0] / total[1]).item():.4f}  "
                f"test accuracy {accuracy.item():.4f}  ({time.perf_counter() - start:.1f} s)",
                flush=True,
            )

    if distributed:  # the replicas must be identical: compare a checksum of the weights
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        spread = torch.stack([flat, -flat])
        dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        identical = bool(((spread[0] + spread[1]) == 0).all())
        if rank == 0:
            print(f"replicas identical after training: {identical}", flush=True)
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
