"""Benchmark: a full layer x position activation-patching sweep, mesa.probes vs TransformerLens.

On a 4-layer TransformerBridge (d_model 64, 16 positions, batch 8), patch ``resid_pre`` at every
layer and position from a clean run into a corrupted one: ``transformer_lens.patching.
get_act_patch_resid_pre`` (one forward pass per layer and position) against
``mesa.probes.patch_sweep`` (one batched forward pass per layer), in the same run, after checking
that the two agree. Medians of several repeats. See ``bench_patching.md``.

    python experiments/bench_patching.py       # writes experiments/results/bench_patching.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_time, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformer_lens.patching as tlp
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    from mesa.probes import logit_diff, patch_sweep

    cfg = TransformerBridgeConfig(
        d_model=64,
        d_head=16,
        n_layers=4,
        n_ctx=16,
        n_heads=4,
        d_vocab=50,
        d_mlp=256,
        act_fn="relu",
        seed=0,
    )
    model = TransformerBridge.boot_native(cfg).eval()
    g = torch.Generator().manual_seed(0)
    clean, corrupted = (torch.randint(0, 50, (8, 16), generator=g) for _ in range(2))
    _, cache = model.run_with_cache(clean)
    metric = logit_diff(1, 2)
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(4)]

    def theirs() -> torch.Tensor:
        return tlp.get_act_patch_resid_pre(model, corrupted, cache, metric)

    def ours() -> torch.Tensor:
        return patch_sweep(model, corrupted, clean, hooks, metric).values

    max_diff = float((theirs() - ours()).abs().max())
    t_theirs, all_theirs = median_time(theirs, args.repeats)
    t_ours, all_ours = median_time(ours, args.repeats)
    print(
        f"transformer_lens.patching: {t_theirs:.3f} s; mesa.probes: {t_ours:.3f} s; "
        f"speed-up {t_theirs / t_ours:.1f}x; max |difference| {max_diff:.2e}"
    )
    write_json(
        "bench_patching",
        {
            "case": "resid_pre, 4 layers x 16 positions, batch 8, d_model 64",
            "transformer_lens_s": all_theirs,
            "mesa_s": all_ours,
            "median_transformer_lens_s": t_theirs,
            "median_mesa_s": t_ours,
            "speedup": t_theirs / t_ours,
            "max_abs_difference": max_diff,
            "repeats": args.repeats,
            "threads": args.threads,
        },
    )


if __name__ == "__main__":
    main()
