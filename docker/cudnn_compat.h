/*
 * caffebox: cuDNN 7 algorithm queries on top of cuDNN 8 and 9.
 *
 * cuDNN 8 removed cudnnGetConvolution{Forward,BackwardFilter,BackwardData}Algorithm and
 * their *Preference_t enums, which BVLC Caffe and its forks call from CuDNNConvolutionLayer.
 * This header, force-included by the rendered Makefile.config of the gpu variant, defines
 * them again in terms of the _v7 queries (still in cuDNN 8 and 9): among the algorithms cuDNN
 * lists fastest first, take the first that succeeds and fits the preference's workspace
 * limit (none, any, or the caller's limit). No line of Caffe is changed, so forks build too.
 * Our own code, written for caffebox.
 */
#ifndef CAFFEBOX_CUDNN_COMPAT_H_
#define CAFFEBOX_CUDNN_COMPAT_H_

#if defined(USE_CUDNN) && !defined(CPU_ONLY)
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>

#if CUDNN_MAJOR >= 8

typedef enum {
  CUDNN_CONVOLUTION_FWD_NO_WORKSPACE = 0,
  CUDNN_CONVOLUTION_FWD_PREFER_FASTEST = 1,
  CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT = 2
} cudnnConvolutionFwdPreference_t;

typedef enum {
  CUDNN_CONVOLUTION_BWD_FILTER_NO_WORKSPACE = 0,
  CUDNN_CONVOLUTION_BWD_FILTER_PREFER_FASTEST = 1,
  CUDNN_CONVOLUTION_BWD_FILTER_SPECIFY_WORKSPACE_LIMIT = 2
} cudnnConvolutionBwdFilterPreference_t;

typedef enum {
  CUDNN_CONVOLUTION_BWD_DATA_NO_WORKSPACE = 0,
  CUDNN_CONVOLUTION_BWD_DATA_PREFER_FASTEST = 1,
  CUDNN_CONVOLUTION_BWD_DATA_SPECIFY_WORKSPACE_LIMIT = 2
} cudnnConvolutionBwdDataPreference_t;

/* The workspace a preference allows: 0 = none, 1 = any, 2 = the caller's limit. */
static inline size_t caffebox_workspace_limit(int preference, size_t limit) {
  return preference == 0 ? 0 : (preference == 1 ? SIZE_MAX : limit);
}

/* Pick from cuDNN's perf list (fastest first); algorithm 0 needs no workspace. */
#define CAFFEBOX_PICK_ALGO(perf, count, preference, limit, algo, type)          \
  do {                                                                          \
    size_t allowed_ = caffebox_workspace_limit((int)(preference), (limit));     \
    *(algo) = (type)0;                                                          \
    for (int i_ = 0; i_ < (count); ++i_) {                                      \
      if ((perf)[i_].status == CUDNN_STATUS_SUCCESS &&                          \
          (perf)[i_].memory <= allowed_) {                                      \
        *(algo) = (perf)[i_].algo;                                              \
        break;                                                                  \
      }                                                                         \
    }                                                                           \
  } while (0)

static inline cudnnStatus_t cudnnGetConvolutionForwardAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnFilterDescriptor_t wDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc,
    cudnnConvolutionFwdPreference_t preference, size_t memoryLimitInBytes,
    cudnnConvolutionFwdAlgo_t* algo) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int count = 0;
  cudnnStatus_t status = cudnnGetConvolutionForwardAlgorithm_v7(
      handle, xDesc, wDesc, convDesc, yDesc, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
      &count, perf);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  CAFFEBOX_PICK_ALGO(perf, count, preference, memoryLimitInBytes, algo,
                     cudnnConvolutionFwdAlgo_t);
  return CUDNN_STATUS_SUCCESS;
}

static inline cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t dwDesc,
    cudnnConvolutionBwdFilterPreference_t preference,
    size_t memoryLimitInBytes, cudnnConvolutionBwdFilterAlgo_t* algo) {
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  cudnnStatus_t status = cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      handle, xDesc, dyDesc, convDesc, dwDesc,
      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  CAFFEBOX_PICK_ALGO(perf, count, preference, memoryLimitInBytes, algo,
                     cudnnConvolutionBwdFilterAlgo_t);
  return CUDNN_STATUS_SUCCESS;
}

static inline cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc,
    cudnnConvolutionBwdDataPreference_t preference, size_t memoryLimitInBytes,
    cudnnConvolutionBwdDataAlgo_t* algo) {
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int count = 0;
  cudnnStatus_t status = cudnnGetConvolutionBackwardDataAlgorithm_v7(
      handle, wDesc, dyDesc, convDesc, dxDesc,
      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  CAFFEBOX_PICK_ALGO(perf, count, preference, memoryLimitInBytes, algo,
                     cudnnConvolutionBwdDataAlgo_t);
  return CUDNN_STATUS_SUCCESS;
}

#endif  /* CUDNN_MAJOR >= 8 */
#endif  /* USE_CUDNN && !CPU_ONLY */
#endif  /* CAFFEBOX_CUDNN_COMPAT_H_ */
