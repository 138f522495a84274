"""The project's settings, as an EasyDict (attribute access), like the papers' configs."""
from easydict import EasyDict as edict

__C = edict()
cfg = __C

__C.TRAIN = edict()
# Anchors at least this IoU with a ground-truth box are foreground, below the other background.
__C.TRAIN.RPN_POSITIVE_OVERLAP = 0.6
__C.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
# Anchors per image that count in the loss, and the foreground share of them.
__C.TRAIN.RPN_BATCHSIZE = 64
__C.TRAIN.RPN_FG_FRACTION = 0.5
__C.TRAIN.RPN_BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# RoIs per image for the detection head, and the foreground share of them.
__C.TRAIN.BATCH_SIZE = 16
__C.TRAIN.FG_FRACTION = 0.25
__C.RNG_SEED = 3
