import numpy
import torch

import protocol


def double(x):
    return x * 2, torch.__file__, numpy.__file__, protocol.MARK
