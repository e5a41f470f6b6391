# A huge allocation (3 GiB, above the test's --memory) while the module loads.
import numpy as np

table = np.ones(3 * 2**30 // 8)


def gsam_direction(g, g_adv, alpha):
    return g_adv
