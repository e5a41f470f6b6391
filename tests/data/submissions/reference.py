# Answers that hand the work to sampy's own implementation: the checkers refuse them.
import numpy as np

from sampy.optim import SGD, LookSAM, Oracle
from sampy.optim.rules import GSAMDescent


def gsam_direction(g, g_adv, alpha):
    return GSAMDescent(alpha, 1e-12)(g, g_adv, None)[0]


def looksam_reuse(g0, g_s, g, alpha):
    script = iter([g0, g_s, g])
    oracle = Oracle.from_gradient(lambda w: next(script))
    optimizer = LookSAM(SGD(lr=1.0), rho=0.1, k=2, alpha=alpha)
    w0 = np.zeros(np.shape(g))
    w1, state = optimizer.step(w0, optimizer.init(w0), oracle)
    w2, _ = optimizer.step(w1, state, oracle)
    return w1 - w2
