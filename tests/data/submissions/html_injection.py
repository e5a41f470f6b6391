# Markup in a message must reach the reports escaped.
import numpy as np


def gsam_direction(g, g_adv, alpha):
    raise ValueError("<script>alert('graded')</script> & ```")


def looksam_reuse(g0, g_s, g, alpha):
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v
