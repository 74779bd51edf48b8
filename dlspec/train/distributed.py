"""Data-parallel training over several processes: `dlspec train SPEC --nproc N`.

The command relaunches itself N times through torchrun's launcher (`elastic_launch`, what
the `torchrun` command runs). Each worker trains the same network wrapped in
DistributedDataParallel: gloo on CPU, nccl on CUDA (one GPU per process).

`train.batch_size` stays the *global* batch: every process draws the same permutation and
takes its own slice of each batch, and losses are scaled so that DDP's gradient average is
exactly the gradient of the whole batch's mean loss. A network without batch-norm or dropout
therefore follows the same trajectory with 1 or N processes, up to float rounding. Every
process evaluates the whole validation split (after batch-norm statistics are taken from
process 0), so all of them agree on early stopping; only process 0 writes files and prints.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dlspec.errors import Problem, WorkError


@dataclass(frozen=True)
class Processes:
    """This process's place among the workers of a data-parallel run."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Process 0: the one that prints, checkpoints and writes the run folder."""
        return self.rank == 0

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This process's part of a batch (parts differ in size by at most one sample)."""
        return tensor.tensor_split(self.world)[self.rank]


def current() -> Processes | None:
    """The data-parallel context torchrun set up for this process; None when run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2 or "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    return Processes(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def joined(device: torch.device) -> Iterator[tuple[Processes | None, torch.device]]:
    """This process's place among data-parallel workers (None when it runs alone) and the
    device it trains on (cuda:LOCAL_RANK on GPUs), inside the process group while open."""
    processes = current()
    if processes is None:
        yield None, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield processes, device
        # leave together: a process that tears its connections down while another is
        # still finishing (process 0 writes the run folder) can make gloo abort the other
        dist.barrier()
    finally:
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` under DistributedDataParallel: the module that runs the training steps."""
    ids = [device] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over every process (all get the result)."""
    total = values.detach().clone()
    dist.all_reduce(total)
    return total


def share_buffers(model: torch.nn.Module) -> None:
    """Give every process process 0's buffers (batch-norm running statistics), so that all
    evaluate the same model and agree on what is best."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run `dlspec ARGV` in `nproc` worker processes; the exit code of the run.

    A worker that fails prints its own message; the launcher's report is kept quiet.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # each worker gets its share of the cores, as torchrun would set it (and without its
    # warning about doing so)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "dlspec", *argv)
    except ChildFailedError as failed:
        codes = [f.exitcode for f in failed.failures.values()]
        return next((code for code in codes if code > 0), 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the launcher could not start the workers
        raise WorkError(Problem((), f"could not start {nproc} training processes: {exc}",
                                "run without --nproc")) from None
    return 0
