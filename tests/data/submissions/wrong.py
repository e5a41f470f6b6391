# Two textbook mistakes the checkers name.
import numpy as np


def gsam_direction(g, g_adv, alpha):  # the wrong sign
    g_perp = g - (g @ g_adv) / (g_adv @ g_adv) * g_adv
    return g_adv + alpha * g_perp


def looksam_reuse(g0, g_s, g, alpha):  # the projection ONTO g0 instead of the rest
    g_v = (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v
