"""Peak memory and time of cDPO critical-token scoring at a real vocabulary size (default: Qwen2.5-0.5B's).

Compares, in one run: (a) a naive reference that builds both models' full (B, T, V) logits from the hidden states and
a full softmax; (b) ``critical_token_scores`` on precomputed logits (the logits are its inputs, counted separately);
(c) ``critical_token_scores_from_hidden`` at several chunk sizes. Each variant runs in a fresh subprocess; its peak is
the process's peak resident memory during the call minus the resident memory just before it (Linux: the peak is reset
through /proc/self/clear_refs; elsewhere ``ru_maxrss`` after minus before, which can under-count).

python benchmarks/critical_token_memory.py [--vocab 151936] [--batch 2] [--length 512] [--hidden 896]
    [--chunk-sizes 16 64 256] [--repeats 1] [--quick]
"""

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from trl_reasoning import token_weights
from trl_reasoning.token_weights import critical_token_scores, critical_token_scores_from_hidden


BETA = 1.0
MIB = 2**20


def _inputs(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Deterministic float32 inputs: two similar models' last hidden states, a shared LM head (logits of std ~3)."""
    generator = torch.Generator().manual_seed(0)
    positive = torch.randn(args.batch, args.length, args.hidden, generator=generator)
    negative = positive + 0.3 * torch.randn(args.batch, args.length, args.hidden, generator=generator)
    weight = torch.randn(args.vocab, args.hidden, generator=generator) * (3.0 / args.hidden**0.5)
    token_ids = torch.randint(0, args.vocab, (args.batch, args.length), generator=generator)
    return dict(positive_hidden=positive, negative_hidden=negative, lm_head_weight=weight, token_ids=token_ids)


def _naive(positive_hidden, negative_hidden, lm_head_weight, token_ids):
    positive_logits = positive_hidden @ lm_head_weight.T
    negative_logits = negative_hidden @ lm_head_weight.T
    probs = torch.softmax((1 + BETA) * positive_logits - BETA * negative_logits, dim=-1)
    return probs.gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)


def _rss_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _worker(args: argparse.Namespace) -> None:
    """One variant in this (fresh) process: build its inputs, measure one call, save the scores."""
    torch.set_grad_enabled(False)
    inputs = _inputs(args)
    if args.worker == "naive":
        call, kept = (lambda: _naive(**inputs)), inputs
    elif args.worker == "logits":
        kept = dict(
            positive_logits=inputs["positive_hidden"] @ inputs["lm_head_weight"].T,
            negative_logits=inputs["negative_hidden"] @ inputs["lm_head_weight"].T,
            token_ids=inputs["token_ids"],
        )
        del inputs

        def call():
            return critical_token_scores(**kept, beta=BETA, chunk_size=args.chunk_size)
    else:
        kept = inputs

        def call():
            return critical_token_scores_from_hidden(**kept, beta=BETA, chunk_size=args.chunk_size)

    gc.collect()
    input_bytes = sum(tensor.numel() * tensor.element_size() for tensor in kept.values())
    # No warm-up before the measured call: memory freed by a warm-up could be reused and hide part of the peak.
    if _reset_peak() and _rss_bytes("VmHWM") is not None:
        method, before = "VmHWM (peak reset via /proc/self/clear_refs)", _rss_bytes("VmRSS")
        start = time.perf_counter()
        scores = call()
        times = [time.perf_counter() - start]
        peak = _rss_bytes("VmHWM") - before
    else:
        method, before = "ru_maxrss after - before", _maxrss_bytes()
        start = time.perf_counter()
        scores = call()
        times = [time.perf_counter() - start]
        peak = _maxrss_bytes() - before
    for _ in range(args.repeats - 1):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    torch.save(scores, args.output)
    print(json.dumps(dict(peak=peak, inputs=input_bytes, time=min(times), method=method)))


def _run_variant(args: argparse.Namespace, variant: str, chunk_size: int | None, output: Path) -> dict:
    command = [sys.executable, __file__, "--worker", variant, "--output", str(output), "--repeats", str(args.repeats)]
    command += ["--vocab", str(args.vocab), "--batch", str(args.batch), "--length", str(args.length)]
    command += ["--hidden", str(args.hidden)]
    if chunk_size is not None:
        command += ["--chunk-size", str(chunk_size)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"variant {variant} (chunk {chunk_size}) failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per variant (the best is reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--chunk-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.quick:
        args.vocab, args.batch, args.length, args.hidden, args.chunk_sizes = 8192, 2, 64, 64, [4, 16]
        args.repeats = max(args.repeats, 3)

    full_logits_mib = args.batch * args.length * args.vocab * 4 / MIB
    print(
        f"B={args.batch} T={args.length} V={args.vocab:,} H={args.hidden} beta={BETA} float32, "
        f"torch threads {torch.get_num_threads()}; one (B, T, V) float32 tensor = {full_logits_mib:,.0f} MiB"
    )
    variants = [("naive", None, "naive: full logits + softmax"), ("logits", None, "critical_token_scores (logits)")]
    variants += [("hidden", chunk, "critical_token_scores_from_hidden") for chunk in args.chunk_sizes]
    auto_chunk = max(1, token_weights._AUTO_CHUNK_BYTES // (4 * args.batch * args.vocab))
    rows, reference, method = [], None, None
    with tempfile.TemporaryDirectory() as directory:
        for index, (variant, chunk_size, label) in enumerate(variants):
            output = Path(directory) / f"{index}.pt"
            result = _run_variant(args, variant, chunk_size, output)
            method = result["method"]
            scores = torch.load(output)
            reference = scores if reference is None else reference
            difference = (scores - reference).abs().max().item()
            chunk = "all" if variant == "naive" else chunk_size or f"auto ({auto_chunk})"
            rows.append((label, chunk, result["peak"] / MIB, result["inputs"] / MIB, result["time"], difference))

    print(f"peak = peak resident memory during the call minus resident memory before it ({method})")
    print()
    print("| variant | chunk | peak MiB (call) | inputs MiB | time s | max abs diff vs naive |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, chunk, peak, inputs, seconds, difference in rows:
        print(f"| {label} | {chunk} | {peak:,.1f} | {inputs:,.1f} | {seconds:.3f} | {difference:.2e} |")
    worst = max(row[-1] for row in rows)
    print()
    print(f"variants agree: max abs difference of the scores {worst:.2e} ({'ok' if worst < 1e-4 else 'MISMATCH'})")


if __name__ == "__main__":
    main()
