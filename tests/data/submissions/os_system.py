# Shell commands run in the sandbox: its working directory and HOME are a temporary folder.
import os

import numpy as np

os.system("touch made_by_os_system")
os.system('touch "$HOME/made_in_home"')


def gsam_direction(g, g_adv, alpha):
    # Right only when both files landed in the working directory, i.e. HOME is the sandbox.
    assert os.path.exists("made_by_os_system") and os.path.exists("made_in_home")
    g_perp = g - (g @ g_adv) / (g_adv @ g_adv) * g_adv
    return g_adv - alpha * g_perp


def looksam_reuse(g0, g_s, g, alpha):
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v
