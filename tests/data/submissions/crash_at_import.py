# The module raises half way: what was defined before is still graded.
import numpy as np


def gsam_direction(g, g_adv, alpha):
    g_perp = g - (g @ g_adv) / (g_adv @ g_adv) * g_adv
    return g_adv - alpha * g_perp


trial = np.zeros(2)[5]  # IndexError while loading


def looksam_reuse(g0, g_s, g, alpha):
    return g
