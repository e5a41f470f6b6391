"""Data-parallel SAM: the twins under ``torch.nn.parallel.DistributedDataParallel`` (DDP).

SAM takes two gradients per step, and under DDP each of them may or may not be all-reduced across
the workers. :func:`ddp_sam_step` runs one step of any two-gradient twin in one of two modes:

- ``ascent="per_worker"`` (the default; m-sharpness with m = the per-worker batch): each worker
  perturbs with the gradient of **its own shard**, ``ε_k = ρ g_k/‖g_k‖``, and only the final
  direction is averaged, ``d = (1/W) Σ_k ∇L_k(w + ε_k)``. This is what the SAM paper does
  (P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently
  Improving Generalization", ICLR 2021, arXiv:2010.01412: the perturbation is computed per
  accelerator, and small m generalises better), what M. Andriushchenko and N. Flammarion
  ("Towards Understanding Sharpness-Aware Minimization", ICML 2022, arXiv:2206.06232) call
  m-SAM, and what GSAM's author calls intentional (juntang-zhuang/GSAM #5). The forward **and**
  the backward of every pass but the last run inside ``model.no_sync()`` (davda54/sam #38, #78:
  a forward outside ``no_sync`` arms DDP's all-reduce for the next backward). **One** gradient
  all-reduce per step, the same as plain DDP with SGD.
- ``ascent="global"`` (n-SAM on the global batch): every backward pass is synchronised by DDP,
  so all workers perturb with the same full-batch gradient ``ḡ = (1/W) Σ_k g_k``; with equal
  shards and a mean loss the step is SAM on the concatenated batch. **Two** gradient
  all-reduces per step (one per pass; the first one is the price of the global perturbation).

Communication per step (each all-reduce moves one gradient-sized vector, in DDP's buckets or
as one flat buffer; a ring all-reduce sends about 2(W−1)/W times its size per worker):

====================================================  =====================  ==============
twin                                                   ``per_worker``         ``global``
====================================================  =====================  ==============
``d = g̃`` twins: SAM/ASAM, USAM, FisherSAM,           1 (DDP, last pass)     2 (DDP)
FriendlySAM, VaSSO, ClampSAM
descent reads ``g``: GSAM, WSAM (coupled), SAME,       1 (explicit, on d)     2 (DDP)
CustomSAME, SAMCkpt, the swaps, ClipSAM, RandomSAM
LookSAM                                                1 (explicit, on d)     2 SAM step, 1 reuse
SAMAnatomy (3 passes)                                  1 (DDP, 3rd pass)      3 (DDP)
MultiStepSAM (k ascent steps, k + 1 passes)            1 (DDP, last pass)     k + 1 (DDP)
WSAM(decouple=True)                                    ValueError             2 (DDP)
ImbSAM, MSharpnessSAM, one-gradient optimizers         ValueError             ValueError
====================================================  =====================  ==============

"DDP" is DDP's own bucketed all-reduce during a synchronised backward (one call per bucket;
it overlaps the backward and honours registered comm hooks). "explicit" is one
``torch.distributed.all_reduce`` of the flattened direction ``d`` (one per device and dtype
of the parameters, one for an ordinary model) just before the base step: when the descent
rule reads the clean gradient (GSAM's decomposition, WSAM's mix, LookSAM's stored ``g_v``),
averaging ``g̃`` alone would give every worker a different ``d`` from its own ``g_k`` and the
replicas would drift apart, so every pass runs unsynchronised and each worker's
``d_k = descent(g_k, g̃_k)`` is averaged instead: exactly :func:`accumulated_sam_step` with the
shards as micro-batches. :func:`ddp_step_plan` returns the plan of the next step. Besides the
gradients, DDP broadcasts the module's buffers (BatchNorm statistics) at every forward unless
``forward_sync_buffers=False`` (formerly ``broadcast_buffers``), as for any DDP model;
DDP's construction broadcasts the parameters once.

Rule state: in ``per_worker`` mode a rule with memory (FriendlySAM's and VaSSO's averages,
LookSAM's ``g_v``) is fed each worker's own gradients, so it differs across workers (the
parameters and the base optimizer's state do not); a checkpoint saved on rank 0 holds rank
0's. In ``global`` mode all state is identical everywhere.

The loss passed back is this worker's loss at ``w`` (detached, not reduced: all-reduce it
yourself for logging). No host synchronisation is added to what DDP and the collectives do.

``DistributedDataParallel(static_graph=True)``: DDP records the graph during its first
synchronised backward, and its reducer fails on an internal assertion when a backward runs
inside ``no_sync()`` before that. ``ascent="global"`` synchronises every pass and works from
the first step; a ``per_worker`` step before DDP's first synchronised backward is refused with
a ``ValueError`` that says to take the first step with ``ascent="global"`` (or one ordinary
synchronised backward). After it, per-worker steps give the weights and all-reduces of a DDP
model without ``static_graph``.

FSDP2 (``torch.distributed.fsdp.fully_shard``) needs no helper: every backward reduce-scatters
the mean gradient, the twins save and restore ``w`` shard by shard and compute their norms and
inner products as ``DTensor`` reductions over all ranks, so the perturbation is the global
``ρ ḡ/‖ḡ‖`` and a step is the twin's step on the whole batch (global ascent, one
reduce-scatter per pass; the plain ``first_step``/``second_step`` loop or ``step(closure)``).
There is no per-worker ascent under FSDP. The older ``FullyShardedDataParallel`` wrapper with
flat parameters hands the optimizer ordinary tensors holding each rank's slice, over which a
twin's norm would be per rank: it is not supported.

Checkpoints: a twin's ``state_dict()`` has torch's layout (the base optimizer's state per
parameter, the twin's buffers under ``"rule_state"``, counters and generator states in the
first parameter group), so ``torch.distributed.checkpoint.state_dict``'s
``get_optimizer_state_dict``/``set_optimizer_state_dict`` round-trip it, under DDP and FSDP2
alike; with ``per_worker`` ascent, save each rank's rule state if it is to be kept (above).
``dcp.load`` reads only what its template holds, and a fresh twin's template lacks the rule
buffers and counters made at the first step: :func:`complete_template` adds them from the
checkpoint's metadata.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from sampy.torch.looksam import LookSAM
from sampy.torch.samanatomy import SAMAnatomy
from sampy.torch.sharpness_aware import PerturbedGradient, SharpnessAware
from sampy.torch.wsam import WSAM

__all__ = ["ASCENT_MODES", "StepPlan", "complete_template", "ddp_sam_step", "ddp_step_plan"]

Ascent = Literal["per_worker", "global"]
ASCENT_MODES: tuple[str, ...] = ("per_worker", "global")


@dataclass(frozen=True)
class StepPlan:
    """How one :func:`ddp_sam_step` communicates (under DDP with more than one worker).

    Attributes:
        synced: one flag per forward/backward pass, in order: whether DDP all-reduces that
            pass's gradient (False: the pass runs inside ``model.no_sync()``).
        average_direction: whether the direction ``d`` is averaged with one explicit
            ``torch.distributed.all_reduce`` before the base step.
    """

    synced: tuple[bool, ...]
    average_direction: bool

    @property
    def passes(self) -> int:
        """Forward/backward passes in the step."""
        return len(self.synced)

    @property
    def all_reduces(self) -> int:
        """Gradient-sized all-reduces in the step: synchronised passes + the explicit one."""
        return sum(self.synced) + int(self.average_direction)


def _passes(optimizer: SharpnessAware) -> int:
    """Passes of the next step; ValueError for an evaluation pattern this helper cannot drive."""
    name = type(optimizer).__name__
    if not isinstance(optimizer, SharpnessAware):
        raise ValueError(
            f"ddp_sam_step drives the two-gradient twins (sampy.torch.SharpnessAware "
            f"subclasses); {name} is not one. A one-gradient optimizer needs no helper under DDP: "
            "loss.backward(); optimizer.step()"
        )
    if isinstance(optimizer, LookSAM):
        return 2 if optimizer.is_sam_step else 1
    if isinstance(optimizer, SAMAnatomy):
        return 3
    if callable(getattr(optimizer, "ascent_step", None)) and hasattr(optimizer, "ascent_steps"):
        return int(optimizer.ascent_steps) + 1  # MultiStepSAM
    cls = type(optimizer)
    if cls.first_step is SharpnessAware.first_step and cls.second_step in (
        SharpnessAware.second_step,
        WSAM.second_step,
    ):
        return 2
    raise ValueError(
        f"ddp_sam_step does not support {name}: it overrides first_step/second_step with its "
        "own evaluation pattern (ImbSAM takes example losses and a tail mask; MSharpnessSAM "
        "splits the batch itself — under DDP use SAM with ascent='per_worker', which is "
        "m-sharpness with m = the per-worker batch). Supported: every SharpnessAware twin with "
        "the first_step/second_step pattern, LookSAM, SAMAnatomy and MultiStepSAM"
    )


def ddp_step_plan(optimizer: SharpnessAware, ascent: Ascent = "per_worker") -> StepPlan:
    """The communication plan of the next :func:`ddp_sam_step` (see the module's table).

    Raises ``ValueError`` for an unknown ``ascent`` and for a twin the helper cannot drive.
    """
    if ascent not in ASCENT_MODES:
        raise ValueError(f"ascent must be one of {ASCENT_MODES}, got {ascent!r}")
    passes = _passes(optimizer)
    if ascent == "global":
        return StepPlan(synced=(True,) * passes, average_direction=False)
    if isinstance(optimizer, WSAM) and optimizer.decouple:
        raise ValueError(
            "WSAM(decouple=True) adds its sharpness term to the weights after the base step, "
            "from this worker's own g and g̃, so per-worker replicas would drift apart; use "
            "ascent='global' or WSAM(decouple=False)"
        )
    # The last pass may be left to DDP's all-reduce only when the direction is the last
    # gradient itself (d = g̃); otherwise every worker's own d is averaged explicitly.
    last_is_direction = type(optimizer.descent) is PerturbedGradient and not isinstance(
        optimizer, LookSAM
    )
    if last_is_direction:
        return StepPlan(synced=(False,) * (passes - 1) + (True,), average_direction=False)
    return StepPlan(synced=(False,) * passes, average_direction=True)


def _distributed_ddp(model: nn.Module) -> DistributedDataParallel | None:
    """The DDP wrapper, or None for a plain module in a single process (ValueError otherwise)."""
    if isinstance(model, DistributedDataParallel):
        return model
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (DDP-wrapped), got {model!r}")
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise ValueError(
            f"model is a plain {type(model).__name__} but {dist.get_world_size()} processes "
            "are running: wrap it in torch.nn.parallel.DistributedDataParallel, or its "
            "gradients are never averaged and the replicas drift apart"
        )
    return None


def _static_graph_not_recorded(ddp: DistributedDataParallel) -> bool:
    """Whether ``ddp`` has ``static_graph=True`` and has not run a synchronised backward yet.

    DDP sets ``_static_graph_delay_allreduce_enqueued`` in the first such backward (read with a
    default, so a torch that renames it only loses this early, clearer error).
    """
    return bool(ddp.static_graph) and not getattr(
        ddp, "_static_graph_delay_allreduce_enqueued", True
    )


def _clear_grads(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


@torch.no_grad()
def _average_grads(optimizer: torch.optim.Optimizer, process_group: Any, world_size: int) -> None:
    """``p.grad ← mean over the workers``: one all-reduce per (device, dtype) of a flat copy.

    ``p.grad`` is replaced by a view of the reduced buffer (never written in place: it may be
    a tensor that a rule keeps, such as LookSAM's ``g_s``).
    """
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                buckets.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    for params in buckets.values():
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        flat.div_(world_size)
        dist.all_reduce(flat, group=process_group)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n


class _AverageThenStep:
    """Stands in for the base optimizer inside ``second_step``: averages the direction ``d``
    (in ``p.grad``) over the workers, then takes the real base step."""

    def __init__(self, base: torch.optim.Optimizer, process_group: Any, world_size: int) -> None:
        self.base = base
        self.process_group = process_group
        self.world_size = world_size

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base.param_groups

    def step(self, closure: Any = None) -> Any:
        _average_grads(self.base, self.process_group, self.world_size)
        return self.base.step()


def ddp_sam_step(
    optimizer: SharpnessAware,
    model: nn.Module,
    loss_fn: Callable[[], Tensor],
    *,
    ascent: Ascent = "per_worker",
) -> Tensor:
    """One step of a two-gradient twin under DDP, per-worker or global ascent; returns the loss.

    ``loss_fn`` computes and returns this worker's loss on its shard (a mean over its examples,
    through the DDP-wrapped ``model``) **without** calling ``backward()``; it runs once per pass
    (twice for SAM). The recipe for SAM (``d = g̃``)::

        per_worker                              global
        with model.no_sync():                   loss_fn().backward()       # DDP: ḡ = mean g_k
            loss_fn().backward()    # g_k
        first_step()                # ε_k       first_step()               # ε = ρ ḡ/‖ḡ‖
        loss_fn().backward()        # DDP: mean g̃_k   loss_fn().backward()  # DDP: mean g̃
        second_step()                           second_step()

    and for a twin whose descent reads ``g`` (GSAM, WSAM, LookSAM, ...), in ``per_worker``
    mode, both passes inside ``no_sync()`` and ``d_k`` averaged by one all-reduce right before
    the base step. :func:`ddp_step_plan` tells which, and how many all-reduces (module table).

    Args:
        optimizer: a ``SharpnessAware`` twin over ``model``'s parameters (``sampy.torch.SAM``,
            GSAM, LookSAM, SAMAnatomy, MultiStepSAM, ...).
        model: the ``DistributedDataParallel`` model. A plain module is accepted only when no
            process group of more than one process is running (then this is a plain SAM step,
            so the same loop runs in one process); otherwise ``ValueError``.
        loss_fn: computes and returns the loss at the current parameters (no ``backward``).
        ascent: ``"per_worker"`` (each worker perturbs with its own gradient; m-sharpness with
            m = the per-worker batch; 1 all-reduce) or ``"global"`` (one perturbation from the
            all-reduced full-batch gradient; 2 all-reduces for SAM).

    Equal-sized shards are assumed (DDP averages the per-worker mean gradients; with unequal
    shards weight the losses yourself). In ``per_worker`` mode with an explicit average every
    worker must produce gradients for the same parameters. Gradients are cleared
    (``p.grad = None``) on entry and on return. With ``gradient_as_bucket_view=True`` the
    gradient of a synchronised pass lives in DDP's bucket, which the next synchronised pass
    overwrites, so the clean gradient is then copied, not kept by reference.
    """
    plan = ddp_step_plan(optimizer, ascent)
    ddp = _distributed_ddp(model)
    if ddp is not None and not all(plan.synced) and _static_graph_not_recorded(ddp):
        raise ValueError(
            "DDP(static_graph=True) records its graph during its first synchronised backward, "
            "and torch's reducer fails (an internal assert) when a backward runs inside "
            "no_sync() before that; take the first step with ascent='global' (or run one "
            "ordinary synchronised backward and zero the gradients), after which "
            f"ascent={ascent!r} steps work, or build the DDP model without static_graph"
        )
    bucket_views = ddp is not None and bool(getattr(ddp, "gradient_as_bucket_view", False))
    _clear_grads(optimizer)
    loss: Tensor | None = None
    last = plan.passes - 1
    for i, synced in enumerate(plan.synced):
        no_sync = ddp.no_sync() if ddp is not None and not synced else contextlib.nullcontext()
        with no_sync, torch.enable_grad():
            pass_loss = loss_fn()
            pass_loss.backward()
        if i == 0:
            loss = pass_loss.detach()
        if i == last:
            break
        # zero_grad=True keeps the clean g by reference (or computes ε in its storage); a DDP
        # bucket view would be overwritten by the next synchronised pass, so copy it then.
        by_reference = not (bucket_views and synced)
        if i == 0:
            optimizer.first_step(zero_grad=by_reference)
        elif isinstance(optimizer, SAMAnatomy):
            optimizer.second_ascent_step(zero_grad=by_reference)
        else:  # MultiStepSAM
            optimizer.ascent_step(zero_grad=by_reference)  # type: ignore[attr-defined]
        if not by_reference:
            _clear_grads(optimizer)
    if plan.average_direction and ddp is not None:
        base = optimizer.base_optimizer
        world = dist.get_world_size(ddp.process_group)
        optimizer.base_optimizer = _AverageThenStep(base, ddp.process_group, world)  # type: ignore[assignment]
        try:
            optimizer.second_step()
        finally:
            optimizer.base_optimizer = base
    else:
        optimizer.second_step()
    _clear_grads(optimizer)
    assert loss is not None
    return loss


def complete_template(
    state_dict: dict[str, Any], metadata: Any, model: nn.Module | None = None
) -> dict[str, Any]:
    """Add to a ``dcp.load`` template every entry the checkpoint has and the template lacks.

    ``torch.distributed.checkpoint.load`` fills the state dict it is given and reads nothing
    else. A fresh twin's ``get_optimizer_state_dict`` holds its base optimizer's state but not
    the buffers and counters its rules create at their first step (LookSAM's ``g_v``, Friendly
    SAM's average, the counter of GSAM's ρ schedule), so they would be skipped without a word.
    This walks the checkpoint's ``metadata`` (``dcp.FileSystemReader(path).read_metadata()``;
    its ``planner_data`` maps every saved key to its path, as the default save planner writes
    it) and allocates each missing entry: a tensor shaped like the parameter it belongs to
    (``torch.empty_like`` of a tensor of the same entry, or of the parameter of ``model`` of
    that name, so a DTensor shard under FSDP2 stays one), else a CPU tensor of the saved size
    and dtype, and ``None`` for a Python value (DCP replaces it). Returns ``state_dict``,
    completed in place::

        template = {"optim": get_optimizer_state_dict(model, opt)}
        complete_template(template, dcp.FileSystemReader(path).read_metadata(), model)
        dcp.load(template, checkpoint_id=path)
        set_optimizer_state_dict(model, opt, template["optim"])

    Raises ``ValueError`` when the metadata holds no paths (a checkpoint written by a planner
    that does not record them).
    """
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    paths = getattr(metadata, "planner_data", None)
    if not isinstance(paths, dict) or not paths:
        raise ValueError(
            "metadata has no planner_data (the key -> path map of the default save planner): "
            "pass the metadata of a checkpoint written by torch.distributed.checkpoint.save"
        )
    params = dict(model.named_parameters()) if model is not None else {}
    for key, path in paths.items():
        parent, found = _walk(state_dict, path[:-1])
        if not found or path[-1] in _keys(parent):
            continue
        saved = metadata.state_dict_metadata.get(key)
        if isinstance(saved, TensorStorageMetadata):
            value = _like(parent, params, path, saved)
        else:
            value = None
        _set(parent, path[-1], value)
    return state_dict


def _keys(container: Any) -> Any:
    return range(len(container)) if isinstance(container, list) else container


def _walk(root: Any, path: tuple) -> tuple[Any, bool]:
    """The container at ``path`` (dicts made on the way where the template has none)."""
    node = root
    for step in path:
        if isinstance(node, list):
            if not isinstance(step, int) or step >= len(node):
                return None, False
            node = node[step]
        elif isinstance(node, dict):
            node = node.setdefault(step, {})
        else:
            return None, False
    return node, isinstance(node, dict | list)


def _set(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value


def _like(parent: Any, params: dict[str, Tensor], path: tuple, saved: Any) -> Tensor:
    """An empty tensor for a missing saved entry, sharded like its parameter where it can be."""
    size, dtype = torch.Size(saved.size), saved.properties.dtype
    siblings = (
        [v for v in parent.values() if isinstance(v, Tensor)] if isinstance(parent, dict) else []
    )
    param = next((params[p] for p in path if isinstance(p, str) and p in params), None)
    for like in [*siblings, *([param] if param is not None else [])]:
        if like.shape == size:
            return torch.empty_like(like, dtype=dtype)
    return torch.empty(size, dtype=dtype)
