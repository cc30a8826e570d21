"""Benchmark: a full layer x position activation-patching sweep, mesa.probes vs TransformerLens.

On a 4-layer TransformerBridge (d_model 64, 16 positions, batch 8), patch ``resid_pre``,
``attn_out`` and ``mlp_out`` at every layer and position from a clean run into a corrupted one:
``transformer_lens.patching.get_act_patch_*`` (one forward pass per layer and position) against
``mesa.probes.patch_sweep`` (one batched forward pass per layer, starting at the patched block
from the corrupted run's cached residual stream), in the same run, after checking that the two
agree. Medians of several interleaved repeats. See ``bench_patching.md``. ::

    python -m experiments bench_patching --repeats 7 --threads 2

writes ``results/bench_patching/threads<T>-<commit>.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from experiments.common import paired_times, write_result


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
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
    cases = {}
    for name in ("resid_pre", "attn_out", "mlp_out"):
        hooks = [f"blocks.{layer}.hook_{name}" for layer in range(4)]
        tl_fn = getattr(tlp, f"get_act_patch_{name}")

        def theirs(tl_fn=tl_fn) -> torch.Tensor:
            return tl_fn(model, corrupted, cache, metric)

        def ours(hooks=hooks) -> torch.Tensor:
            return patch_sweep(model, corrupted, clean, hooks, metric).values

        max_diff = float((theirs() - ours()).abs().max())
        medians, times = paired_times({"tl": theirs, "mesa": ours}, args.repeats)
        speedup = medians["tl"] / medians["mesa"]
        print(
            f"{name}: transformer_lens.patching {medians['tl']:.3f} s; mesa.probes "
            f"{medians['mesa']:.3f} s; speed-up {speedup:.2f}x; max |difference| {max_diff:.2e}"
        )
        cases[name] = {
            "transformer_lens_s": times["tl"],
            "mesa_s": times["mesa"],
            "median_transformer_lens_s": medians["tl"],
            "median_mesa_s": medians["mesa"],
            "speedup": speedup,
            "max_abs_difference": max_diff,
        }
    write_result(
        "bench_patching",
        f"threads{args.threads}",
        {
            "case": "4 layers x 16 positions, batch 8, d_model 64; repeats run interleaved",
            "cases": cases,
            "min_speedup": min(c["speedup"] for c in cases.values()),
            "max_abs_difference": max(c["max_abs_difference"] for c in cases.values()),
            "repeats": args.repeats,
            "threads": args.threads,
        },
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "min speed-up": result["min_speedup"],
        "max |difference|": result["max_abs_difference"],
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| hook | transformer_lens.patching (s, median) | mesa.probes (s, median) | speed-up "
        "| max \\|difference\\| |",
        "|---|---|---|---|---|",
    ]
    for name, c in result["cases"].items():
        lines.append(
            f"| `{name}` | {c['median_transformer_lens_s']:.3f} | {c['median_mesa_s']:.3f} | "
            f"{c['speedup']:.2f}x | {c['max_abs_difference']:.1e} |"
        )
    return "\n".join(lines)
