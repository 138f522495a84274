# Box overlaps (intersection over union), in Cython for speed.
cimport numpy as np
import numpy as np

DTYPE = np.float
ctypedef np.float_t DTYPE_t


def bbox_overlaps(np.ndarray[DTYPE_t, ndim=2] boxes, np.ndarray[DTYPE_t, ndim=2] query):
    """IoU of each box (N x 4) with each query box (K x 4): an N x K array."""
    cdef unsigned int N = boxes.shape[0]
    cdef unsigned int K = query.shape[0]
    cdef np.ndarray[DTYPE_t, ndim=2] out = np.zeros((N, K), dtype=DTYPE)
    cdef DTYPE_t width, height, area, union
    cdef unsigned int n, k
    for k in range(K):
        area = (query[k, 2] - query[k, 0] + 1) * (query[k, 3] - query[k, 1] + 1)
        for n in range(N):
            width = min(boxes[n, 2], query[k, 2]) - max(boxes[n, 0], query[k, 0]) + 1
            if width <= 0:
                continue
            height = min(boxes[n, 3], query[k, 3]) - max(boxes[n, 1], query[k, 1]) + 1
            if height <= 0:
                continue
            union = (boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1) + area
            out[n, k] = width * height / (union - width * height)
    return out


def count_assigned(np.ndarray[np.int_t, ndim=1] assigned, int columns):
    """How many rows were assigned to each column."""
    cdef np.ndarray[np.int_t, ndim=1] counts = np.zeros(columns, dtype=np.int)
    cdef unsigned int i
    for i in range(assigned.shape[0]):
        counts[assigned[i]] += 1
    return counts
