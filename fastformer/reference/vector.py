"""Vector ops."""
import numpy as np


def dot(x, y):
    """dot(x, y) -> float: sum of x * y over two vectors of one length."""
    return float(np.dot(x, y))
