"""Draw docs/sgd_vs_sam.png, the picture at the top of the README.

Run: .venv/bin/python scripts/readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script, not a notebook: no display needed
import matplotlib.pyplot as plt
import numpy as np

import sampy
from sampy import plot
from sampy.optim import SAM, SGD

f = sampy.functions.get("sharp_flat")
x0 = np.array([-0.4, -0.4])
sgd = sampy.run(SGD(lr=0.008), f, x0, 6000)
sam = sampy.run(SAM(SGD(lr=0.008), rho=0.1), f, x0, 6000)

fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
plot.landscape(f, ax, levels=25)
plot.trajectories(sgd, ax, color="tab:red", label="gradient descent")
plot.trajectories(sam, ax, color="white", label="SAM, ρ = 0.1")
ax.legend(loc="lower right")
ax.set_title("Same start, same step size: SAM leaves the sharp minimum for the flat one")
fig.tight_layout()
out = Path(__file__).resolve().parent.parent / "docs" / "sgd_vs_sam.png"
fig.savefig(out)
print(out)
