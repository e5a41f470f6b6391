# In-place updates of the arguments: a right one and a wrong one.
import numpy as np


def gsam_direction(g, g_adv, alpha):  # right, but overwrites g_adv
    g_perp = g - (g @ g_adv) / (g_adv @ g_adv) * g_adv
    g_adv -= alpha * g_perp
    return g_adv


def looksam_reuse(g0, g_s, g, alpha):  # forgets the ratio |g|/|g_v|, and overwrites g
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    g += alpha * g_v
    return g
