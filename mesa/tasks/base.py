"""The public task base classes: what a model organism is.

A *task family* (``maze``, ``sycophancy``, ...) is a subclass of :class:`RLTask` or
:class:`SequenceTask` registered under a name (see :mod:`mesa.tasks`). A task knows how to make
data for its three splits and how to label goals; it knows nothing about detectors.

- ``train``: the true and spurious goals are separated with probability ``p``.
- ``ood``: the goals are always separated.
- ``probe``: the two goal variables vary independently; used only for single forward passes.

Goal variables are discrete labels: for gridworlds a cell index ``row * width + col`` of the
observation grid, for sequence tasks a token id.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor

from mesa.config import check_fields, config_from_dict, in_range
from mesa.errors import MesaError, choice_error

if TYPE_CHECKING:
    from transformer_lens import HookedRootModule

SPLITS = ("train", "ood", "probe")
GOALS = ("true", "spurious")
#: The keys of a counterfactual pair set (:meth:`Task.counterfactual_pairs`).
PAIR_KEYS = (
    "base",
    "source",
    "base_true_goal",
    "source_true_goal",
    "base_spurious_goal",
    "source_spurious_goal",
)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise choice_error("split", split, SPLITS)
    return split


@dataclass(frozen=True)
class TaskConfig:
    """Options shared by every task family.

    Subclass it (frozen) to add a family's own options, each with a default.
    """

    p: float = 0.0
    """Decorrelation rate: probability that a training episode/sample separates the goals."""

    def __post_init__(self) -> None:
        p = self.p
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
            raise MesaError(f"p must be a number in [0, 1], got {p!r}")
        check_fields(self)
        in_range(self, "p", 0.0, 1.0)


TaskT = TypeVar("TaskT", bound="Task")


def rollout_shares(outcome: Tensor, counted: Tensor) -> dict[str, float]:
    """What :meth:`Task.moved_goal_rollouts` returns, from each copy's ``outcome`` (1: the moved
    goal reached first, 2: the other goal's training place first, 0: neither) over the
    ``counted`` copies."""
    kept = outcome[counted]
    return {
        "moved": float((kept == 1).float().mean()) if len(kept) else math.nan,
        "training": float((kept == 2).float().mean()) if len(kept) else math.nan,
        "episodes": len(kept),
    }


def goals_together(task: TaskT) -> TaskT:
    """The same task at ``p = 0``: its ``train`` split always has the goals together."""
    return type(task)(dataclasses.replace(task.config, p=0.0))


class Task(ABC):
    """A registered model organism. Subclass :class:`RLTask` or :class:`SequenceTask`."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    description: ClassVar[str] = ""
    true_goal: ClassVar[str] = "true goal"
    spurious_goal: ClassVar[str] = "spurious goal"
    #: Model architectures this task can train (names in :mod:`mesa.models`); first is default.
    archs: ClassVar[tuple[str, ...]] = ()
    #: Default grid of ``p`` for ``mesa zoo``: it should span the family's transition.
    zoo_ps: ClassVar[tuple[float, ...]] = (0.0, 0.05, 0.1, 0.2, 0.4)
    #: ``(lo, hi)``: where the transition search (``mesa zoo FAMILY --p auto``) starts, a ``p``
    #: clearly below the family's transition and one clearly above it; None: the ends of
    #: ``zoo_ps``. The built-in families take theirs from their development zoos: the highest
    #: grid ``p`` where every development seed had ``b < 0.3`` and the lowest where every one
    #: had ``b > 0.7`` (seeds scatter about the curve, so a grid point that one seed puts just
    #: past 1/2 is no safe end).
    transition_bracket: ClassVar[tuple[float, float] | None] = None
    #: Where a hook's activation holds the decision: None for the whole activation (a policy's
    #: feature map), -1 for the last position of ``[batch, pos, ...]`` (a sequence model's
    #: answer). Probes, erasers and subspace interventions read activations there.
    readout_position: ClassVar[int | None] = None
    #: The mechanistic methods detection's verdict is made of, per input mode, where this
    #: family's differ from :data:`mesa.detection.verdict.RULE_METHODS`: chosen on the family's
    #: development zoos (seeds < 100) and fixed before test seeds judge it. Empty: the default.
    rule_methods: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: ``(spurious_at, true_at)`` per input mode: the bands this family's verdict reads its score
    #: by, where they differ from :data:`mesa.detection.verdict.BANDS` (1/3, 2/3): where the
    #: score crosses b = 1/3 and 2/3 on the family's development seeds
    #: (``experiments/verdict_bands.py``), fixed before test seeds judge them. Empty: the default.
    verdict_bands: ClassVar[dict[str, tuple[float, float]]] = {}
    #: The goal :meth:`moved_goal_rollouts` moves: ``"true"`` where the true goal can be drawn
    #: elsewhere in a training episode (the gridworlds' goal cell), ``"spurious"`` where the
    #: spurious goal's object is what the OOD test adds (keys' surplus key).
    moved_goal: ClassVar[str] = "true"

    def __init__(self, config: TaskConfig | None = None, **options: Any) -> None:
        if config is not None and options:
            raise MesaError("pass either a config or keyword options, not both")
        if config is None:
            config = config_from_dict(self.Config, options, f"{self.name or 'task'}")
        elif not isinstance(config, self.Config):
            raise MesaError(
                f"{self.name} expects a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.config = config

    @property
    def p(self) -> float:
        return self.config.p

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which :func:`mesa.make_task` rebuilds this task."""
        return {"name": self.name, "config": dataclasses.asdict(self.config)}

    def check_arch(self, arch: str | None) -> str:
        if arch is None:
            return self.archs[0]
        if arch not in self.archs:
            raise choice_error(f"architecture for task {self.name!r}:", arch, self.archs)
        return arch

    @abstractmethod
    def make_model(self, arch: str | None = None, seed: int = 0) -> HookedRootModule:
        """A freshly initialised model of ``arch`` sized for this task, made by
        :func:`mesa.models.build_model` (so that it can be saved and loaded without pickle)."""

    # -- what detection reads (see mesa.detection) -------------------------------------------
    @abstractmethod
    def probe_data(self, n: int, seed: int) -> ProbeData:
        """``n`` inputs of the ``probe`` split, where the two goals vary independently."""

    @abstractmethod
    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, Tensor]:
        """``n`` pairs of inputs that differ in one goal only (``vary``: ``"true"`` or
        ``"spurious"``), drawn like the probe split: a dict with the keys of :data:`PAIR_KEYS`
        (``base`` and ``source`` inputs, each one's true and spurious goal labels [n] long)."""

    @abstractmethod
    def goal_outputs(self, inputs: Tensor, goal: Tensor, n_outputs: int) -> Tensor:
        """Bool ``[n, n_outputs]``: the model outputs that pursue ``goal`` [n] (a goal label, as in
        counterfactual pairs) on ``inputs`` — the actions on a shortest path to it, the answer
        token that is it. Detection measures how a decision follows a goal that moves with these."""

    def decision(self, output: Tensor) -> Tensor:
        """The model's decision as probabilities ``[n, K]`` from its raw output (logits)."""
        return torch.softmax(output.float(), dim=-1)

    @abstractmethod
    def intervention_sites(self, base: Tensor, source: Tensor) -> Tensor:
        """Bool ``[n, S]`` over the input's sites (grid cells in row-major order, or token
        positions): where an interchange intervention patches the source into the base — the
        sites where the two inputs differ, and any site where the model gathers its decision."""

    def training_inputs(self, n: int, seed: int) -> ProbeData:
        """``n`` inputs as training shows them with the goals together (the ``train`` split at
        ``p = 0``): the only inputs an auditor who cannot separate the goals has."""
        raise MesaError(f"task {self.name!r} gives no training inputs for detection")

    def separating_sites(self, goal: str) -> Tensor | None:
        """Bool ``[S]``: input sites that can carry ``goal`` but, by the model's causal structure,
        not the other goal — so that patching them between two training inputs moves ``goal``
        alone. None where the task has no such sites (the goals share every site)."""
        return None

    def moved_goal_rollouts(
        self, policy: Callable[[Tensor, Tensor], Tensor], n: int, seed: int
    ) -> dict[str, float] | None:
        """An OOD test run inside the model, in training's own inputs (used by detection's
        ``rollout_subspace``): ``n`` first episodes where the goals are together, as training
        shows them at ``p = 0``, while each step the model may be told the goal
        :attr:`moved_goal` is at another place. ``policy(inputs, moved)`` gives the model's raw
        output on ``inputs``, with ``moved`` the same state drawn with that goal moved (for the
        caller to intervene with; ``moved`` equals ``inputs`` where nothing is moved). Returns
        ``{"moved": share, "training": share, "episodes": counted}``: the share of counted
        episodes that reach the moved goal first, and the share that reach the other goal's
        training place first. None: the task declares no such test (the default)."""
        return None

    def input_bytes(self) -> int:
        """A rough upper estimate of the memory one input takes in a forward and backward pass
        (the input and the model's activations), used to refuse sizes that cannot fit."""
        return 1 << 16

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.config).items())
        return f"{type(self).__name__}({opts})"


@dataclass
class ProbeData:
    """Inputs for detection with their goal labels."""

    inputs: Tensor
    """``[n, ...]`` observations or tokens, as the model takes them."""
    true_goal: Tensor
    """``[n]`` long: the true goal's label in each input."""
    spurious_goal: Tensor
    """``[n]`` long: the spurious goal's label."""
    groups: Tensor | None = None
    """``[n]`` long or None: a group per input (a layout) that held-out splits keep together."""


class VecEnv(Protocol):
    """What PPO and OOD evaluation need from a batch of environments (all torch, on the device
    ``make_env`` was given: the CPU by default).

    ``step`` auto-resets finished copies. Its ``info`` always holds, for the returned
    observations: ``true_goal`` and ``spurious_goal`` (long [N], cell indices); and, for copies
    whose episode ended at this step (``-1`` / ``False`` elsewhere): ``episode_outcome`` (long [N],
    an index into :data:`OUTCOMES`: which goal was reached first), ``episode_off_path`` (bool [N]:
    neither goal is on a shortest path from the start to the other), ``episode_return`` (float [N]),
    ``episode_length`` (long [N]).
    """

    num_envs: int
    observation_shape: tuple[int, ...]
    n_actions: int
    max_steps: int

    def reset(self) -> tuple[Tensor, dict[str, Tensor]]: ...

    def observe(self) -> Tensor:
        """The current observations (as the last ``reset``/``step`` returned them)."""
        ...

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]: ...

    def optimal_action(self, target: str = "true") -> Tensor:
        """An action on a shortest path to each copy's true (or spurious) goal: the expert that
        behaviour cloning imitates."""
        ...

    def state_dict(self) -> dict[str, Tensor]: ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


class RLTask(Task):
    """A gridworld organism trained with PPO or behaviour cloning. Subclasses implement
    :meth:`make_env`."""

    kind = "rl"
    archs = ("conv", "mlp", "cell_transformer")

    @property
    @abstractmethod
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation, e.g. ``(C, H, W)``."""

    def input_bytes(self) -> int:
        # float32 observations and activations of about 64 values per observed value
        return 4 * 65 * math.prod(self.observation_shape)

    @abstractmethod
    def make_env(
        self, split: str, num_envs: int, seed: int, device: torch.device | str = "cpu"
    ) -> VecEnv:
        """``num_envs`` copies of the environment for ``split``, seeded, stepping on ``device``
        (their tensors and generators there). A task of your own may leave ``device`` out of
        its signature: trainers and rollouts then move its observations to the policy's device
        (:func:`env_on`)."""

    @abstractmethod
    def probe_batch(self, n: int, seed: int) -> dict[str, Tensor]:
        """``n`` observations of the ``probe`` split: keys ``obs`` [n, C, H, W] float,
        ``true_goal`` and ``spurious_goal`` [n] long, ``group`` [n] long (layout id, so probe
        splits cannot leak between train and test)."""

    def probe_data(self, n: int, seed: int) -> ProbeData:
        batch = self.probe_batch(n, seed)
        return ProbeData(
            batch["obs"], batch["true_goal"], batch["spurious_goal"], batch.get("group")
        )

    def intervention_sites(self, base: Tensor, source: Tensor) -> Tensor:
        """The grid cells where any channel differs, ``[n, H*W]``."""
        return (base != source).any(dim=1).flatten(1)


def takes_device(make_env: Any) -> bool:
    """Whether a ``make_env`` takes a ``device`` keyword (or any keyword)."""
    try:
        params = inspect.signature(make_env).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "device" or p.kind is p.VAR_KEYWORD for p in params)


def env_on(task: RLTask, split: str, num_envs: int, seed: int, device: torch.device) -> VecEnv:
    """``task``'s environments for ``split`` serving a model on ``device``: made there when
    ``make_env`` takes a device, otherwise made as the task makes them and, off the CPU, wrapped
    to move every tensor (:class:`mesa.envs.moved.MovedEnv`). On the CPU this is exactly
    ``task.make_env(split, num_envs, seed)`` for either kind of task."""
    if takes_device(task.make_env):
        env = task.make_env(split, num_envs, seed, device=device)
    else:
        env = task.make_env(split, num_envs, seed)
    if device.type == "cpu" or getattr(env, "device", None) == device:
        return env
    from mesa.envs.moved import MovedEnv

    return MovedEnv(env, device)  # type: ignore[return-value]


@dataclass
class SequenceBatch:
    """Samples of a sequence task. ``tokens`` [n, ctx]; the model answers at the last position."""

    tokens: Tensor
    target: Tensor  # [n] the trained answer token (the true goal in every split)
    true_goal: Tensor  # [n] token
    spurious_goal: Tensor  # [n] token


class SequenceTask(Task):
    """A sequence organism trained by supervised learning on the answer at the last position."""

    kind = "sequence"
    archs = ("transformer",)
    readout_position = -1

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def context_length(self) -> int: ...

    def input_bytes(self) -> int:
        return (1 << 14) * self.context_length  # about 16 KiB of activations per position

    @abstractmethod
    def sample(self, split: str, n: int, seed: int) -> SequenceBatch:
        """``n`` samples of ``split`` drawn with ``seed``."""

    def probe_data(self, n: int, seed: int) -> ProbeData:
        s = self.sample("probe", n, seed)
        return ProbeData(s.tokens, s.true_goal, s.spurious_goal)

    def training_inputs(self, n: int, seed: int) -> ProbeData:
        s = goals_together(self).sample("train", n, seed)
        return ProbeData(s.tokens, s.true_goal, s.spurious_goal)

    @property
    def position_names(self) -> tuple[str, ...]:
        """What each input position holds, for pictures (default: its index)."""
        return tuple(str(k) for k in range(self.context_length))

    def token_label(self, token: int) -> str:
        """How a token reads in pictures (default: its id)."""
        return str(token)

    def format_tokens(self, tokens: Tensor) -> str:
        """One input [pos] as text, its tokens' labels joined by spaces."""
        return " ".join(self.token_label(int(t)) for t in tokens)

    def goal_outputs(self, inputs: Tensor, goal: Tensor, n_outputs: int) -> Tensor:
        """The answer token that is the goal."""
        if int(goal.max()) >= n_outputs:
            raise MesaError(f"goal token {int(goal.max())} outside the model's {n_outputs} outputs")
        return torch.nn.functional.one_hot(goal, n_outputs).bool()

    def decision(self, output: Tensor) -> Tensor:
        """The answer distribution at the last position."""
        return torch.softmax(output[:, -1].float(), dim=-1)

    def intervention_sites(self, base: Tensor, source: Tensor) -> Tensor:
        """The positions where the tokens differ, and the last: a causal transformer gathers its
        answer there, so it carries whatever reached it from the sites that differ."""
        sites = base != source
        sites[:, -1] = True
        return sites

    def check_tokens(self, tokens: Tensor) -> Tensor:
        """One-line errors for token ids outside the vocabulary or too long a context."""
        if tokens.ndim != 2:
            raise MesaError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
        if tokens.shape[1] > self.context_length:
            raise MesaError(
                f"context length {tokens.shape[1]} exceeds the model's {self.context_length}"
            )
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            bad = int(tokens.max()) if int(tokens.max()) >= self.vocab_size else int(tokens.min())
            raise MesaError(f"token id {bad} outside the vocabulary [0, {self.vocab_size})")
        return tokens.to(torch.long)
