"""Core's LoRA model sharded with FSDP2 (`fully_shard`) across gloo processes on CPU.

accelerate turns FSDP on only for GPU backends (on CPU it falls back to DDP) and DeepSpeed refuses
CPU, so this is the part of sharded training a CPU machine can check: the model nmm trains, split
by torch's own FSDP2 the way accelerate's TRANSFORMER_BASED_WRAP splits it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def lora_twin(preset: str = "tiny-qwen2-vl", *, seed: int = 0):
    """A tiny twin loaded the way users load models, with nmm's LoRA on it (fp32, CPU)."""
    import torch

    from nmm_core.lora import LoraSettings, apply_lora
    from nmm_core.models import load_model

    loaded = load_model(preset, device="cpu", dtype="float32")
    torch.manual_seed(seed)
    return loaded, apply_lora(loaded, LoraSettings(r=8, alpha=16, dropout=0.0))


def step_batches(loaded, *, steps: int, world: int, per_rank: int = 2, seed: int = 0) -> list[list[dict]]:
    """For each step, one collated batch per rank (the same examples whatever process asks)."""
    from nmm_core.chat import VlmCollator
    from nmm_core.testing.shapes import make_shapes_dataset

    examples = make_shapes_dataset(steps * world * per_rank, seed=seed, image_size=64)
    collate = VlmCollator(loaded.processor, loaded.family)
    return [[collate(examples[(s * world + r) * per_rank:(s * world + r + 1) * per_rank]) for r in range(world)]
            for s in range(steps)]


def shard(model, world: int) -> None:
    """`fully_shard` each of the model's `_no_split_modules` blocks, then the whole model."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    blocks = set(model.get_base_model()._no_split_modules or ())
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)


def train_losses(model, batches: list[list[dict]], *, rank: int, world: int, lr: float = 1e-2) -> list[float]:
    """AdamW steps on the trainable weights; each step's loss is the mean of its per-rank batches' losses.

    One process (world 1) computes every rank's batch itself: the data-parallel loss that a
    sharded run averages over ranks, so the two runs compute the same quantity.
    """
    import torch
    import torch.distributed as dist

    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in batches:
        mine = step if world == 1 else [step[rank]]
        loss = sum(model(**b).loss for b in mine) / len(mine)
        loss.backward()  # FSDP averages the gradients over ranks as it reduce-scatters them
        optim.step()
        optim.zero_grad()
        seen = loss.detach().clone()
        if world > 1:
            dist.all_reduce(seen)
            seen /= world
        losses.append(seen.item())
    return losses


def dtensor_facts(model) -> dict[str, Any]:
    """Whether every parameter is a DTensor, and how many elements this rank holds of how many."""
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    return {"all_dtensor": all(isinstance(p, DTensor) for p in params),
            "local": sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params),
            "full": sum(p.numel() for p in params),
            "trainable_dtensor": all(isinstance(p, DTensor) for p in params if p.requires_grad)}


def run_rank(rank: int, world: int, port: int, out_dir: str, steps: int) -> None:
    """One gloo process: load, shard, train `steps` steps, write `rank<R>.json`."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # two processes on two cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        loaded, model = lora_twin()
        batches = step_batches(loaded, steps=steps, world=world)
        shard(model, world)
        facts = dtensor_facts(model)
        facts["losses"] = train_losses(model, batches, rank=rank, world=world)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(facts))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port nothing listens on now (for the gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sharded_run(out_dir: str | Path, *, world: int = 2, steps: int = 3, timeout: float = 600) -> list[dict[str, Any]]:
    """`world` fresh processes of `run_rank` (as torchrun would start them); each rank's facts and losses."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", __name__, str(r), str(world), str(port), str(out_dir), str(steps)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    for rank, proc in enumerate(procs):
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"rank {rank} exited {proc.returncode}:\n{err[-3000:]}"
    return [json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(world)]


if __name__ == "__main__":
    rank, world, port, out_dir, steps = sys.argv[1:6]
    run_rank(int(rank), int(world), int(port), out_dir, int(steps))
