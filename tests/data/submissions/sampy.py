# A student whose file is called sampy.py: it must not shadow the grader's own package.
import numpy as np


def gsam_direction(g, g_adv, alpha):
    g_perp = g - (g @ g_adv) / (g_adv @ g_adv) * g_adv
    return g_adv - alpha * g_perp


def looksam_reuse(g0, g_s, g, alpha):
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v


if __name__ == "__main__":
    raise SystemExit("a student's own trials: the grader must not run this block")
