"""Train a small model whose output layer is split by class across processes.

One machine, four processes (gloo on CPUs, NCCL when there are GPUs):

    torchrun --nproc_per_node=4 examples/vocab_parallel.py

Several machines: run the same command on each, with ``--nnodes``, this
machine's ``--node-rank`` and a rendezvous endpoint they can all reach:

    torchrun --nnodes=2 --node-rank=0 --nproc_per_node=4 \\
        --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT examples/vocab_parallel.py

The task: map each token of a vocabulary of ``--vocab`` classes to
``(7 * token + 3) % vocab``.  The model is an embedding and a hidden layer,
replicated on every rank, and an output layer of ``vocab`` classes whose
weight and bias are split by :func:`softmaxkit.distributed.shard_range`.
The loss is :func:`softmaxkit.distributed.vocab_parallel_linear_cross_entropy`:
no rank ever holds the logits of all classes, and its backward all-reduces
the gradient of the hidden states, so the replicated layers get the same
gradient on every rank and stay in step with no further communication.
Every rank builds the full model from the same seed and keeps its shard, so
the losses printed by rank 0 do not depend on the number of processes.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch import nn

from softmaxkit.distributed import shard_range, vocab_parallel_linear_cross_entropy


def make_model(vocab: int, dim: int, seed: int, dtype: torch.dtype) -> tuple[nn.Module, nn.Linear]:
    """``(trunk, head)``: the replicated layers and the full output layer, from ``seed``."""
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Embedding(vocab, dim), nn.Linear(dim, dim), nn.Tanh()).to(dtype)
    head = nn.Linear(dim, vocab).to(dtype)
    return trunk, head


def make_batch(step: int, vocab: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same batch on every rank: tokens and their targets."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    tokens = torch.randint(0, vocab, (size,), generator=generator)
    return tokens, (7 * tokens + 3) % vocab


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=2000, help="number of classes")
    parser.add_argument("--dim", type=int, default=64, help="hidden size")
    parser.add_argument("--batch", type=int, default=256, help="tokens per step")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    parser.add_argument("--chunk-size", type=int, default=None, help="classes per chunk")
    parser.add_argument("--print-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dtype = getattr(torch, args.dtype)

    trunk, head = make_model(args.vocab, args.dim, args.seed, dtype)
    start, stop = shard_range(args.vocab, world, rank)
    weight = nn.Parameter(head.weight.detach()[start:stop].to(device, copy=True))
    bias = nn.Parameter(head.bias.detach()[start:stop].to(device, copy=True))
    del head  # this rank keeps only its classes
    trunk.to(device)
    optimizer = torch.optim.Adam([*trunk.parameters(), weight, bias], lr=args.lr)
    if rank == 0:
        print(
            f"{world} processes, {args.vocab} classes: rank 0 holds classes [{start}, {stop})",
            flush=True,
        )

    for step in range(1, args.steps + 1):
        tokens, targets = (
            t.to(device) for t in make_batch(step, args.vocab, args.batch, args.seed)
        )
        loss = vocab_parallel_linear_cross_entropy(
            trunk(tokens), weight, targets, local_bias=bias, chunk_size=args.chunk_size
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if rank == 0 and (step == 1 or step % args.print_every == 0 or step == args.steps):
            print(f"step {step:5d}  loss {loss.item():.6f}", flush=True)
    # Every rank reaches the end before any tears the group down: gloo can abort a
    # process that destroys its group while a peer is still finishing a step.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
