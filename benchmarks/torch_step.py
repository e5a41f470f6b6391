"""Torch: the time of one SAM step, ``opt.step(closure)``, on two MLPs on the CPU.

A SAM step is two forward/backward passes and one base step, so its natural price is two
plain SGD steps (``zero_grad`` + forward + backward + ``SGD.step``), timed in the same rounds.
Goals for ``sampy.torch.SAM`` with a ``torch.optim.SGD`` base:

- at most 1.05 × two SGD steps (the perturbation and the restore are nearly free);
- faster than pytorch-optimizer's ``SAM`` with the same ρ and the same base (ratio < 1).

davda54/sam (the reference implementation most code copies: a Python loop over tensors for
the norm, the perturbation and the restore) is written inline below as an extra reference.

Every implementation trains its own copy of the same model on the same fixed random batch.
Steps are interleaved one by one (SGD, sampy, pytorch-optimizer, ... then again), after a
warm-up, and compared by their medians. Run alone: ``python -m benchmarks.torch_step``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
from collections.abc import Callable

import torch
from torch import nn

from benchmarks._common import (
    NOISY,
    Table,
    cell,
    interleaved,
    median,
    ms,
    noisy,
    spread,
    usable_cores,
)

RHO = 0.05
LR = 0.01
BATCH = 128
GOAL_VS_SGD = 1.05


# --- davda54/sam (https://github.com/davda54/sam, MIT), as published: one loop per tensor ---


class Davda54SAM(torch.optim.Optimizer):
    """davda54/sam's SAM, reproduced for timing (extra reference, not a peer under test)."""

    def __init__(self, params, base_optimizer, rho=0.05, adaptive=False, **kwargs):
        defaults = dict(rho=rho, adaptive=adaptive, **kwargs)
        super().__init__(params, defaults)
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        grad_norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (grad_norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.state[p]["old_p"] = p.data.clone()
                e_w = (torch.pow(p, 2) if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                p.add_(e_w)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.data = self.state[p]["old_p"]
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure=None):
        closure = torch.enable_grad()(closure)
        self.first_step(zero_grad=True)
        closure()
        self.second_step()

    def _grad_norm(self):
        device = self.param_groups[0]["params"][0].device
        return torch.norm(
            torch.stack(
                [
                    ((torch.abs(p) if group["adaptive"] else 1.0) * p.grad).norm(p=2).to(device)
                    for group in self.param_groups
                    for p in group["params"]
                    if p.grad is not None
                ]
            ),
            p=2,
        )


# --- the floor: the least a SAM step can do in torch on the CPU --------------------------------


def bare_sam_step(model: nn.Module, base: torch.optim.Optimizer, closure: Callable) -> None:
    """One SAM step with nothing but its unavoidable kernels (extra reference, not a peer).

    The clean gradient, one read of it for the global norm, one fused pass ``w + c g`` written
    into the gradient's storage (the parameter points there for the second pass while ``w``
    stays in its own), the gradient at ``w + ε``, the pointers back, the base step. No checks,
    no groups, no hooks, no state: what ``sampy.torch.SAM`` would cost if its safety,
    generality and bookkeeping were free.
    """
    params = list(model.parameters())
    for p in params:
        p.grad = None
    closure()
    grads = [p.grad for p in params]
    with torch.no_grad():
        c = RHO / (float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))) + 1e-12)
        saved = [p.data for p in params]
        for p, w, g in zip(params, saved, grads, strict=True):
            p.data = torch.add(w, g, alpha=c, out=g)
        for p in params:
            p.grad = None
    closure()
    with torch.no_grad():
        for p, w in zip(params, saved, strict=True):
            p.data = w
    base.step()


# --- the models and the steps ----------------------------------------------------------------


def mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


MODELS = {
    "MLP 784-256-256-10 (6 tensors)": [784, 256, 256, 10],
    "MLP 20 layers x 64 wide (40 tensors)": [64] * 20 + [10],
}


def _closure(model: nn.Module, opt: torch.optim.Optimizer, x, y) -> Callable[[], torch.Tensor]:
    loss_fn = nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    return closure


def problem(widths: list[int], seed: int = 0) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """The MLP of ``widths`` and one fixed random batch ``(x, y)``, drawn from ``seed``."""
    torch.manual_seed(seed)
    model = mlp(widths)
    x = torch.randn(BATCH, widths[0])
    y = torch.randint(0, widths[-1], (BATCH,))
    return model, x, y


def make_steps(widths: list[int], seed: int = 0) -> tuple[dict[str, Callable], dict]:
    """One training step per implementation, each on its own copy of one model."""
    import pytorch_optimizer

    import sampy.torch

    model, x, y = problem(widths, seed)
    models: dict[str, nn.Module] = {}

    def copy_for(name: str) -> nn.Module:
        models[name] = copy.deepcopy(model)
        return models[name]

    steps: dict[str, Callable] = {}

    m = copy_for("sgd")
    sgd = torch.optim.SGD(m.parameters(), lr=LR)
    closure_sgd = _closure(m, sgd, x, y)
    steps["sgd"] = lambda: (closure_sgd(), sgd.step())

    m = copy_for("sampy")
    opt_sampy = sampy.torch.SAM(m.parameters(), torch.optim.SGD, rho=RHO, lr=LR)
    closure_sampy = _closure(m, opt_sampy, x, y)
    steps["sampy"] = lambda: opt_sampy.step(closure_sampy)

    # pytorch-optimizer's step(closure) expects the first gradient to be there already.
    m = copy_for("pytorch_optimizer")
    opt_po = pytorch_optimizer.SAM(m.parameters(), torch.optim.SGD, rho=RHO, lr=LR)
    closure_po = _closure(m, opt_po, x, y)
    steps["pytorch_optimizer"] = lambda: (closure_po(), opt_po.step(closure_po))

    m = copy_for("pytorch_optimizer_foreach")
    opt_pof = pytorch_optimizer.SAM(m.parameters(), torch.optim.SGD, rho=RHO, lr=LR, foreach=True)
    closure_pof = _closure(m, opt_pof, x, y)
    steps["pytorch_optimizer_foreach"] = lambda: (closure_pof(), opt_pof.step(closure_pof))

    m = copy_for("davda54")
    opt_d = Davda54SAM(m.parameters(), torch.optim.SGD, rho=RHO, lr=LR)
    closure_d = _closure(m, opt_d, x, y)
    steps["davda54"] = lambda: (closure_d(), opt_d.step(closure_d))

    # zero_grad + forward + backward alone: an SGD step plus it is the per-variant benchmark's
    # denominator, 2 forward/backward + 1 base step (the base step as it costs after a backward)
    m = copy_for("fb")
    steps["fb"] = _closure(m, torch.optim.SGD(m.parameters(), lr=LR), x, y)

    m = copy_for("floor")
    base_floor = torch.optim.SGD(m.parameters(), lr=LR)
    closure_floor = _closure(m, base_floor, x, y)
    steps["floor"] = lambda: bare_sam_step(models["floor"], base_floor, closure_floor)
    return steps, models


def max_param_difference(a: nn.Module, b: nn.Module) -> float:
    with torch.no_grad():
        return max(
            float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters(), strict=True)
        )


def bench_model(name: str, widths: list[int], threads: int, quick: bool) -> Table:
    torch.set_num_threads(threads)
    steps, models = make_steps(widths)
    warmup = 3 if quick else 15
    t = interleaved(
        steps,
        rounds=30 if quick else 150,
        warmup=warmup,
        max_seconds=5 if quick else 20,
        min_rounds=10 if quick else 30,
    )
    rounds = len(t["sgd"])
    med = {k: median(v) for k, v in t.items()}
    two_sgd = 2 * med["sgd"]

    def m(key: str) -> str:
        return cell(ms(med[key]), spread(t[key]))

    table = Table(
        f"Torch SAM step, {name}, batch {BATCH}, {threads} thread(s): step(closure) "
        f"(2 forward/backward + 1 SGD step), rho={RHO}",
        short=f"torch {name.split(' (')[0]}, {threads} thread(s)",
    )
    sgd2 = f"2 x SGD {ms(two_sgd)}"
    po = f"p-opt {ms(med['pytorch_optimizer'])}"
    table.add(
        "sampy.torch.SAM vs 2 x SGD step",
        m("sampy"),
        sgd2,
        med["sampy"] / two_sgd,
        f"<= {GOAL_VS_SGD}",
        med["sampy"] / two_sgd <= GOAL_VS_SGD,
    )
    table.add(
        "sampy.torch.SAM vs pytorch_optimizer.SAM",
        m("sampy"),
        po,
        med["sampy"] / med["pytorch_optimizer"],
        "< 1",
        med["sampy"] / med["pytorch_optimizer"] < 1,
    )
    table.add(
        "pytorch_optimizer.SAM (default: foreach off on CPU)",
        m("pytorch_optimizer"),
        sgd2,
        med["pytorch_optimizer"] / two_sgd,
    )
    table.add(
        "pytorch_optimizer.SAM foreach=True (its SGD too)",
        m("pytorch_optimizer_foreach"),
        sgd2,
        med["pytorch_optimizer_foreach"] / two_sgd,
    )
    table.add("davda54/sam (inline, per-tensor loop)", m("davda54"), sgd2, med["davda54"] / two_sgd)
    table.add(
        "sampy.torch.SAM vs davda54/sam",
        m("sampy"),
        f"davda54 {ms(med['davda54'])}",
        med["sampy"] / med["davda54"],
    )
    table.add(
        "floor: a bare SAM step (inline: norm + one fused pass)",
        m("floor"),
        sgd2,
        med["floor"] / two_sgd,
    )
    table.add(
        "sampy.torch.SAM vs the bare SAM step",
        m("sampy"),
        f"floor {ms(med['floor'])}",
        med["sampy"] / med["floor"],
    )
    two_fb = med["sgd"] + med["fb"]
    fb_base = f"2 fb + SGD {ms(two_fb)}"
    table.add("floor vs 2 fb + 1 SGD step", m("floor"), fb_base, med["floor"] / two_fb)
    table.add("sampy.torch.SAM vs 2 fb + 1 SGD step", m("sampy"), fb_base, med["sampy"] / two_fb)
    diff = max_param_difference(models["sampy"], models["davda54"])
    table.notes.append(
        f"plain SGD step {m('sgd')} (median of {rounds}); each implementation took "
        f"{rounds + warmup} steps; sampy vs davda54 weights after them: "
        f"max |Δ| = {diff:.1e}, sampy vs the bare step: "
        f"{max_param_difference(models['sampy'], models['floor']):.1e} (same algorithm); the "
        "bare step is what SAM's arithmetic costs with sampy's checks, groups, hooks and "
        "safety taken away: the floor a ≤ 1.05 goal is measured against; the last two rows "
        f"divide by an SGD step plus zero_grad + forward + backward ({m('fb')}), the "
        "denominator of benchmarks.torch_variants (2 fb + 1 base step)"
    )
    if noisy(*t.values()):
        table.notes.append(NOISY)
    return table


def run(quick: bool = False) -> list[Table]:
    """Both models, at the machine's core count and at one thread."""
    tables = []
    default_threads = torch.get_num_threads()
    thread_counts = sorted({usable_cores(), 1}, reverse=True)
    try:
        for threads in thread_counts:
            for name, widths in MODELS.items():
                table = bench_model(name, widths, threads, quick)
                table.print()
                tables.append(table)
    finally:
        torch.set_num_threads(default_threads)
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
