"""Assign anchors to ground-truth boxes: the RPN's classification labels and box targets.

    layer { name: 'rpn-data' type: 'Python'
            bottom: 'rpn_cls_score' bottom: 'gt_boxes' bottom: 'im_info'
            top: 'rpn_labels' top: 'rpn_bbox_targets'
            top: 'rpn_bbox_inside_weights' top: 'rpn_bbox_outside_weights'
            python_param { module: 'boxnet.anchor_labels' layer: 'AnchorLabelLayer'
                           param_str: "'feat_stride': 4" } }
"""
import caffe
import numpy as np
import numpy.random as npr
import yaml

from config import cfg
from anchors import box_targets, cell_anchors
from geometry.iou import bbox_overlaps, count_assigned

DEBUG = False


class AnchorLabelLayer(caffe.Layer):

    def setup(self, bottom, top):
        layer_params = yaml.load(self.param_str_)
        self._feat_stride = layer_params['feat_stride']
        self._anchors = cell_anchors(self._feat_stride, layer_params.get('scales', (2, 3, 4)))
        self._num_anchors = self._anchors.shape[0]
        self._allowed_border = layer_params.get('allowed_border', 0)
        if DEBUG:
            print 'anchors:'
            print self._anchors
        height, width = bottom[0].data.shape[-2:]
        A = self._num_anchors
        top[0].reshape(1, 1, A * height, width)
        top[1].reshape(1, A * 4, height, width)
        top[2].reshape(1, A * 4, height, width)
        top[3].reshape(1, A * 4, height, width)

    def forward(self, bottom, top):
        height, width = bottom[0].data.shape[-2:]
        gt_boxes = bottom[1].data
        im_info = bottom[2].data[0, :]

        # the A anchors of one cell moved to each of the K cells
        shift_x = np.arange(0, width) * self._feat_stride
        shift_y = np.arange(0, height) * self._feat_stride
        shift_x, shift_y = np.meshgrid(shift_x, shift_y)
        shifts = np.vstack((shift_x.ravel(), shift_y.ravel(),
                            shift_x.ravel(), shift_y.ravel())).transpose()
        A = self._num_anchors
        K = shifts.shape[0]
        all_anchors = (self._anchors.reshape((1, A, 4)) +
                       shifts.reshape((1, K, 4)).transpose((1, 0, 2))).reshape((K * A, 4))
        total_anchors = K * A

        # anchors that stick out of the image take no part
        inds_inside = np.where(
            (all_anchors[:, 0] >= -self._allowed_border) &
            (all_anchors[:, 1] >= -self._allowed_border) &
            (all_anchors[:, 2] < im_info[1] + self._allowed_border) &
            (all_anchors[:, 3] < im_info[0] + self._allowed_border))[0]
        anchors = all_anchors[inds_inside, :]

        # 1 foreground, 0 background, -1 left out of the loss
        labels = np.empty((len(inds_inside), ), dtype=np.float32)
        labels.fill(-1)
        overlaps = bbox_overlaps(np.ascontiguousarray(anchors, dtype=np.float),
                                 np.ascontiguousarray(gt_boxes[:, :4], dtype=np.float))
        argmax_overlaps = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(len(inds_inside)), argmax_overlaps]
        gt_argmax_overlaps = overlaps.argmax(axis=0)
        gt_max_overlaps = overlaps[gt_argmax_overlaps, np.arange(overlaps.shape[1])]
        gt_argmax_overlaps = np.where(overlaps == gt_max_overlaps)[0]
        labels[max_overlaps < cfg.TRAIN.RPN_NEGATIVE_OVERLAP] = 0
        labels[gt_argmax_overlaps] = 1
        labels[max_overlaps >= cfg.TRAIN.RPN_POSITIVE_OVERLAP] = 1

        # sample the batch: at most half foreground, background for the rest
        fg_inds = np.where(labels == 1)[0]
        if len(fg_inds) > cfg.TRAIN.RPN_BATCHSIZE / 2:
            disable = npr.choice(fg_inds, size=len(fg_inds) - cfg.TRAIN.RPN_BATCHSIZE / 2,
                                 replace=False)
            labels[disable] = -1
        num_bg = cfg.TRAIN.RPN_BATCHSIZE - np.sum(labels == 1)
        bg_inds = np.where(labels == 0)[0]
        if len(bg_inds) > num_bg:
            labels[npr.choice(bg_inds, size=(len(bg_inds) - num_bg), replace=False)] = -1
        if DEBUG:
            per_gt = count_assigned(argmax_overlaps[labels == 1], len(gt_boxes))
            print 'positives per gt box:', per_gt

        bbox_targets = box_targets(anchors, gt_boxes[argmax_overlaps, :4])
        inside = np.zeros((len(inds_inside), 4), dtype=np.float32)
        inside[labels == 1, :] = np.array(cfg.TRAIN.RPN_BBOX_INSIDE_WEIGHTS)
        outside = np.zeros((len(inds_inside), 4), dtype=np.float32)
        num_examples = np.sum(labels >= 0)
        outside[labels == 1, :] = 1.0 / num_examples
        outside[labels == 0, :] = 1.0 / num_examples

        # every anchor again (those outside the image: ignored, no target), then the
        # blobs' layouts: labels (1, 1, A*H, W), the rest (1, 4A, H, W)
        labels = _spread(labels, total_anchors, inds_inside, -1)
        shape = (1, height, width, A)
        top[0].reshape(1, 1, A * height, width)
        top[0].data[...] = labels.reshape(shape).transpose(0, 3, 1, 2).reshape(top[0].data.shape)
        for i, values in enumerate((bbox_targets, inside, outside)):
            spread = _spread(values, total_anchors, inds_inside, 0)
            top[i + 1].reshape(1, A * 4, height, width)
            top[i + 1].data[...] = spread.reshape((1, height, width, A * 4)).transpose(0, 3, 1, 2)

    def backward(self, top, propagate_down, bottom):
        pass  # targets only: nothing to learn here

    def reshape(self, bottom, top):
        pass  # forward sets the shapes


def _spread(values, total, where, empty):
    """values (one row per kept anchor) placed at rows `where` of `total` rows of `empty`."""
    out = np.full((total, ) + values.shape[1:], empty, dtype=np.float32)
    out[where] = values
    return out
