"""Reference boxes (anchors) for one feature-map cell, and box regression targets."""
import numpy as np


def cell_anchors(base_size=4, scales=(2, 3, 4)):
    """Square anchors of side base_size * scale centred on the first cell: A x 4."""
    ctr = (base_size - 1) / 2.
    anchors = np.zeros((len(scales), 4), dtype=np.float)
    for i, scale in enumerate(scales):
        half = (base_size * scale - 1) / 2.
        anchors[i, :] = [ctr - half, ctr - half, ctr + half, ctr + half]
    return anchors


def box_targets(boxes, gt):
    """(dx, dy, dw, dh) that move each box onto its ground-truth box."""
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    gt_widths = gt[:, 2] - gt[:, 0] + 1.0
    gt_heights = gt[:, 3] - gt[:, 1] + 1.0
    dx = (gt[:, 0] + 0.5 * gt_widths - boxes[:, 0] - 0.5 * widths) / widths
    dy = (gt[:, 1] + 0.5 * gt_heights - boxes[:, 1] - 0.5 * heights) / heights
    return np.vstack((dx, dy, np.log(gt_widths / widths), np.log(gt_heights / heights))).T
