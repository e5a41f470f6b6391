# A huge allocation (3 GiB, above the test's --memory) costs that exercise only.
import numpy as np


def gsam_direction(g, g_adv, alpha):
    hoard = np.ones(3 * 2**30 // 8)
    return g_adv + hoard[0]


def looksam_reuse(g0, g_s, g, alpha):
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v
