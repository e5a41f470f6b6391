import numpy as np


def orthogonal_part(v, direction):
    return v - (v @ direction) / (direction @ direction) * direction


def rescaled(v, like):
    return np.linalg.norm(like) / np.linalg.norm(v) * v
