import numpy as np


def gsam_direction(g, g_adv, alpha)
    return g_adv
