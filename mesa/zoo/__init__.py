"""Zoos of models over ``p`` and seeds, and the agreement of mechanistic verdicts with behaviour."""

from mesa.zoo.agreement import Agreement, zoo_agreement
from mesa.zoo.runner import ZooConfig, ZooResult, run_zoo

__all__ = ["Agreement", "ZooConfig", "ZooResult", "run_zoo", "zoo_agreement"]
