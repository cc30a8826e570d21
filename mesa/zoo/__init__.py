"""Zoos of models over ``p`` and seeds, and the agreement of mechanistic verdicts with behaviour."""

from mesa.zoo.agreement import Agreement, zoo_agreement
from mesa.zoo.curve import group_by_p, p_curve
from mesa.zoo.runner import ZooConfig, ZooResult, run_zoo
from mesa.zoo.transition import TransitionConfig, TransitionResult, find_transition

__all__ = [
    "Agreement",
    "TransitionConfig",
    "TransitionResult",
    "ZooConfig",
    "ZooResult",
    "find_transition",
    "group_by_p",
    "p_curve",
    "run_zoo",
    "zoo_agreement",
]
