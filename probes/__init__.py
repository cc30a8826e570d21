"""mesa.probes: probes, activation patching, subspace interventions and concept erasure.

Works on any ``transformer_lens`` ``HookedRootModule`` (mesa's policies and transformers, and
your own models); depends on nothing else in mesa but its error type.
"""
