"""Synthetic detection data: one bright square per image on a noisy background.

ToyImageLayer feeds an RPN (data, im_info, gt_boxes); ToyRoiLayer feeds a Fast R-CNN head
(data, rois, labels, bbox targets and their weights).
"""
import caffe
import numpy as np
import yaml

from config import cfg
from anchors import box_targets
from geometry.iou import bbox_overlaps


def _image(rng, size):
    """One image (3 x size x size) and its ground-truth box (x1, y1, x2, y2, class 1)."""
    im = rng.rand(3, size, size).astype(np.float32) * 0.2
    side = rng.randint(size / 4, size / 2 + 1)
    x1, y1 = rng.randint(0, size - side, 2)
    im[:, y1:y1 + side, x1:x1 + side] += 0.8
    return im, np.array([[x1, y1, x1 + side - 1, y1 + side - 1, 1]], dtype=np.float32)


class ToyImageLayer(caffe.Layer):

    def setup(self, bottom, top):
        params = yaml.load(self.param_str_)
        self._size = params['size']
        try:
            seed = params['seed']
        except KeyError, e:
            print 'no seed in param_str (%s): using cfg.RNG_SEED' % e
            seed = cfg.RNG_SEED
        self._rng = np.random.RandomState(seed)
        top[0].reshape(1, 3, self._size, self._size)
        top[1].reshape(1, 3)
        top[2].reshape(1, 5)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        im, gt = _image(self._rng, self._size)
        top[0].data[...] = im
        top[1].data[...] = [self._size, self._size, 1.0]
        top[2].data[...] = gt

    def backward(self, top, propagate_down, bottom):
        pass


class ToyRoiLayer(caffe.Layer):

    def setup(self, bottom, top):
        params = yaml.load(self.param_str_)
        self._size = params['size']
        self._rng = np.random.RandomState(params.get('seed', cfg.RNG_SEED))
        n = cfg.TRAIN.BATCH_SIZE
        top[0].reshape(1, 3, self._size, self._size)
        top[1].reshape(n, 5)
        top[2].reshape(n)
        for i in xrange(3, 6):
            top[i].reshape(n, 8)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        im, gt = _image(self._rng, self._size)
        n = cfg.TRAIN.BATCH_SIZE
        num_fg = int(round(cfg.TRAIN.FG_FRACTION * n))
        jitter = self._rng.uniform(-2, 2, (num_fg, 4))
        fg = gt[:, :4] + jitter
        corners = self._rng.randint(0, self._size - 4, (n - num_fg, 2))
        sides = self._rng.randint(4, self._size / 2, (n - num_fg, 1))
        bg = np.hstack((corners, corners + sides)).astype(np.float32)
        boxes = np.clip(np.vstack((fg, bg)), 0, self._size - 1)
        overlaps = bbox_overlaps(boxes.astype(np.float), gt[:, :4].astype(np.float))[:, 0]
        labels = (overlaps >= 0.5).astype(np.float32)
        targets = np.zeros((n, 8), dtype=np.float32)
        weights = np.zeros((n, 8), dtype=np.float32)
        fg_inds = np.where(labels == 1)[0]
        targets[fg_inds, 4:] = box_targets(boxes[fg_inds], np.repeat(gt[:, :4], len(fg_inds), 0))
        weights[fg_inds, 4:] = 1.0
        top[0].data[...] = im
        top[1].data[...] = np.hstack((np.zeros((n, 1)), boxes))
        top[2].data[...] = labels
        top[3].data[...] = targets
        top[4].data[...] = weights
        top[5].data[...] = weights > 0

    def backward(self, top, propagate_down, bottom):
        pass
