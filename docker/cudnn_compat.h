/*
 * caffebox: cuDNN 7 algorithm queries on top of cuDNN 8 and 9.
 *
 * cuDNN 8 removed cudnnGetConvolution{Forward,BackwardFilter,BackwardData}Algorithm and
 * their *Preference_t enums, which BVLC Caffe and its forks call from CuDNNConvolutionLayer.
 * This header, force-included by the rendered Makefile.config of the gpu variant, defines
 * them again in terms of the _v7 queries (still in cuDNN 8 and 9): among the algorithms cuDNN
 * lists fastest first, take the first that succeeds, computes in FP32 (TF32 only with
 * CAFFEBOX_CUDNN_TF32=1) and fits the preference's workspace limit (none, any, or the
 * caller's limit). No line of Caffe is changed, so forks build too.
 * Our own code, written for caffebox.
 */
#ifndef CAFFEBOX_CUDNN_COMPAT_H_
#define CAFFEBOX_CUDNN_COMPAT_H_

#if defined(USE_CUDNN) && !defined(CPU_ONLY)
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

/* FP32 means FP32: Caffe's float nets do not run in TF32 (tensor cores, 10-bit mantissa)
 * unless CAFFEBOX_CUDNN_TF32=1 says so. cuDNN 8+ may otherwise pick TF32 for float on
 * Ampere and later (an H100 run: input gradients 8.6e-2 off Caffe's own engine, 1.1e-6
 * with TF32 off). */
static inline int caffebox_tf32_allowed(void) {
  const char* v = getenv("CAFFEBOX_CUDNN_TF32");
  return v != NULL && v[0] == '1';
}

static inline int caffebox_math_allowed(cudnnMathType_t math) {
  return caffebox_tf32_allowed() ||
         (math != CUDNN_TENSOR_OP_MATH && math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
}

/* Before the query: without TF32 the descriptor asks for FMA math, so cuDNN lists (and
 * sizes workspaces for) FP32 algorithms only. */
static inline void caffebox_fp32_descriptor(cudnnConvolutionDescriptor_t conv) {
  if (!caffebox_tf32_allowed()) cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH);
}

/* Pick from cuDNN's perf list (fastest first) the first that succeeded, uses an allowed
 * math type and fits the preference's workspace; where none fits, the allowed one that
 * needs the least workspace, said on stderr (never algorithm 0 in silence); where none is
 * allowed at all, CUDNN_STATUS_NOT_SUPPORTED. The descriptor then carries the math type
 * the choice was listed (and its workspace sized) with. */
#define CAFFEBOX_PICK_ALGO(perf, count, preference, limit, algo, conv, what)      \
  do {                                                                          \
    size_t allowed_ = caffebox_workspace_limit((int)(preference), (limit));     \
    int best_ = -1, least_ = -1;                                                \
    for (int i_ = 0; i_ < (count); ++i_) {                                      \
      if ((perf)[i_].status != CUDNN_STATUS_SUCCESS ||                          \
          !caffebox_math_allowed((perf)[i_].mathType)) continue;                \
      if (least_ < 0 || (perf)[i_].memory < (perf)[least_].memory) least_ = i_; \
      if (best_ < 0 && (perf)[i_].memory <= allowed_) best_ = i_;               \
    }                                                                           \
    if (best_ < 0 && least_ < 0) return CUDNN_STATUS_NOT_SUPPORTED;            \
    if (best_ < 0) {                                                            \
      best_ = least_;                                                           \
      fprintf(stderr, "caffebox cudnn_compat: no %s algorithm fits the workspace " \
              "limit of %zu bytes; taking algorithm %d, which needs %zu\n", (what), \
              allowed_, (int)(perf)[best_].algo, (size_t)(perf)[best_].memory);    \
    }                                                                           \
    *(algo) = (perf)[best_].algo;                                               \
    cudnnSetConvolutionMathType((conv), caffebox_tf32_allowed()                 \
                                ? (perf)[best_].mathType : CUDNN_FMA_MATH);     \
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
  caffebox_fp32_descriptor(convDesc);
  cudnnStatus_t status = cudnnGetConvolutionForwardAlgorithm_v7(
      handle, xDesc, wDesc, convDesc, yDesc, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
      &count, perf);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  CAFFEBOX_PICK_ALGO(perf, count, preference, memoryLimitInBytes, algo, convDesc,
                     "forward");
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
  caffebox_fp32_descriptor(convDesc);
  cudnnStatus_t status = cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      handle, xDesc, dyDesc, convDesc, dwDesc,
      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  CAFFEBOX_PICK_ALGO(perf, count, preference, memoryLimitInBytes, algo, convDesc,
                     "backward-filter");
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
  caffebox_fp32_descriptor(convDesc);
  cudnnStatus_t status = cudnnGetConvolutionBackwardDataAlgorithm_v7(
      handle, wDesc, dyDesc, convDesc, dxDesc,
      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  CAFFEBOX_PICK_ALGO(perf, count, preference, memoryLimitInBytes, algo, convDesc,
                     "backward-data");
  return CUDNN_STATUS_SUCCESS;
}

#endif  /* CUDNN_MAJOR >= 8 */
#endif  /* USE_CUDNN && !CPU_ONLY */
#endif  /* CAFFEBOX_CUDNN_COMPAT_H_ */
