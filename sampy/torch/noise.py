"""Seeded random draws for the torch twins: on the device, or exactly as the NumPy reference.

Several variants draw random numbers every step (RandomSAM's perturbation, ESAM's weight mask,
SSAM's scores and samples, bSAM's posterior samples, m-SAM's shuffling). A twin owns one
``Noise`` source, made from its ``seed`` and ``noise`` arguments:

- ``noise="torch"`` (the default): a ``torch.Generator`` per device, so the draws happen on the
  device and a step never waits for the host;
- ``noise="numpy"``: ``numpy.random.default_rng(seed)`` called exactly as the NumPy reference
  calls it (the same methods, the same sizes, in the same order), the result copied to the
  device. Its draws are the reference's draws, which is how the twin tests compare a random
  variant with its reference to 1e-10; it costs a host-to-device copy per draw.

Every draw is a flat vector (a twin splits it over its tensors in group order, which is the
reference's order over the flattened parameter vector). ``state_dict()`` holds the generator
state, so a resumed run continues with the same draws.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from sampy.torch.checkpoint_layout import load_from_groups, save_in_groups

NOISE_SOURCES = ("torch", "numpy")
NOISE_KEY = "noise"  # state_dict key of the generator state


class Noise(Protocol):
    """A seeded source of flat random vectors on a given device and dtype."""

    def normal(self, n: int, like: Tensor) -> Tensor:
        """``n`` draws of ``N(0, 1)`` with ``like``'s dtype and device."""
        ...

    def uniform(self, n: int, like: Tensor) -> Tensor:
        """``n`` draws of ``U[0, 1)`` with ``like``'s dtype and device."""
        ...

    def permutation(self, n: int, device: torch.device) -> Tensor:
        """A random permutation of ``0..n-1`` (int64) on ``device``."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The generator state (saved by the twin's ``state_dict``)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved generator state."""
        ...


class TorchNoise:
    """Draws with a ``torch.Generator`` per device, seeded with ``seed`` when first used."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(torch.device(device))
        if key not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[key] = generator
        return self._generators[key]

    def normal(self, n: int, like: Tensor) -> Tensor:
        """``n`` draws of ``N(0, 1)`` on ``like``'s device."""
        gen = self._generator(like.device)
        return torch.randn(n, generator=gen, dtype=like.dtype, device=like.device)

    def uniform(self, n: int, like: Tensor) -> Tensor:
        """``n`` draws of ``U[0, 1)`` on ``like``'s device."""
        gen = self._generator(like.device)
        return torch.rand(n, generator=gen, dtype=like.dtype, device=like.device)

    def uniform_into(self, out: Tensor) -> Tensor:
        """``out`` filled with ``uniform(out.numel(), like=out)``'s draws (the same numbers,
        in a buffer the caller reuses: no fresh tensor per step)."""
        return out.uniform_(generator=self._generator(out.device))

    def permutation(self, n: int, device: torch.device) -> Tensor:
        """``torch.randperm`` on ``device``."""
        return torch.randperm(n, generator=self._generator(device), device=device)

    def state_dict(self) -> dict[str, Any]:
        """Seed and per-device generator states (CPU byte tensors)."""
        return {
            "source": "torch",
            "seed": self.seed,
            "states": {key: gen.get_state() for key, gen in self._generators.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generators saved by ``state_dict``."""
        _check_source(state, "torch")
        self.seed = int(state["seed"])
        self._generators = {}
        for key, saved in state["states"].items():
            self._generator(torch.device(key)).set_state(saved)


class NumpyNoise:
    """Draws with ``numpy.random.default_rng(seed)``, call for call as the NumPy reference."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)

    def normal(self, n: int, like: Tensor) -> Tensor:
        """``rng.standard_normal(n)``, copied to ``like``'s device."""
        return torch.as_tensor(self.rng.standard_normal(n), dtype=like.dtype, device=like.device)

    def uniform(self, n: int, like: Tensor) -> Tensor:
        """``rng.random(n)``, copied to ``like``'s device."""
        return torch.as_tensor(self.rng.random(n), dtype=like.dtype, device=like.device)

    def permutation(self, n: int, device: torch.device) -> Tensor:
        """``rng.permutation(n)``, copied to ``device``."""
        return torch.as_tensor(self.rng.permutation(n), dtype=torch.int64, device=device)

    def state_dict(self) -> dict[str, Any]:
        """Seed and the bit generator's state (plain Python data)."""
        return {"source": "numpy", "seed": self.seed, "state": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the bit generator's state."""
        _check_source(state, "numpy")
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng(self.seed)
        self.rng.bit_generator.state = state["state"]


class SavesNoise:
    """Saves and loads ``self.noise_source``'s generator state with the optimizer state.

    Put it first in the bases of a twin that draws random numbers: its ``__init__`` takes the
    twin's ``noise`` and ``seed`` keywords, sets ``seed``, ``noise`` and ``noise_source`` (the
    generator) and passes every other argument on to the next base.
    """

    noise_source: Noise

    def __init__(self, *args: Any, noise: str, seed: int, **kwargs: Any) -> None:
        self.seed = int(seed)
        self.noise = noise
        self.noise_source = make_noise(noise, self.seed)
        self._numpy_noise = noise == "numpy"
        super().__init__(*args, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state plus the generator state under ``"noise"`` in the first group.

        In a group, not at the top: ``torch.distributed.checkpoint`` keeps only ``"state"``
        and ``"param_groups"`` of an optimizer's state dict.
        """
        state = super().state_dict()  # type: ignore[misc]
        save_in_groups(state, NOISE_KEY, self.noise_source.state_dict())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the optimizer state and continue the saved generator (also an older checkpoint
        with the generator state at the top)."""
        state_dict, noise = load_from_groups(state_dict, NOISE_KEY)
        if noise is None:
            raise ValueError(
                f"state_dict has no {NOISE_KEY!r} entry (the generator state); was it saved by "
                f"sampy {type(self).__name__}?"
            )
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self.noise_source.load_state_dict(noise)


def _check_source(state: dict[str, Any], expected: str) -> None:
    if state.get("source") != expected:
        raise ValueError(
            f"the saved noise state comes from noise={state.get('source')!r}, but this "
            f"optimizer draws with noise={expected!r}"
        )


def make_noise(noise: str, seed: int) -> TorchNoise | NumpyNoise:
    """The source named by a twin's ``noise`` argument ("torch" or "numpy")."""
    if noise == "torch":
        return TorchNoise(seed)
    if noise == "numpy":
        return NumpyNoise(seed)
    raise ValueError(f"noise must be one of {NOISE_SOURCES}, got {noise!r}")
