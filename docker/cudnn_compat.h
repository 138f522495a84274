/*
 * caffebox: cuDNN 7 algorithm queries on top of cuDNN 8 and 9.
 *
 * cuDNN 8 removed cudnnGetConvolution{Forward,BackwardFilter,BackwardData}Algorithm and
 * their *Preference_t enums, which BVLC Caffe and its forks call from CuDNNConvolutionLayer.
 * This header, force-included by the rendered Makefile.config of the gpu variant, defines
 * them again in terms of the _v7 queries (still in cuDNN 8 and 9): among the algorithms cuDNN
 * lists fastest first, take the first that succeeds and fits the preference's workspace
 * limit (none, any, or the caller's limit). No line of Caffe is changed, so forks build too.
 *
 * Caffe asks again on every Reshape, that is before every forward pass. cuDNN 7 answered
 * from a table; cuDNN 8 and 9 build and rank engine configurations for each _v7 query, which
 * on an H100 made a small net's cuDNN forward pass three times slower than Caffe's own
 * im2col convolution. So each answer is remembered per device, query and descriptor
 * contents (shapes, strides, types, padding, dilation, groups, math type), as PyTorch's
 * cuDNN algorithm cache does: the same question gets cuDNN's same answer without asking.
 * Our own code, written for caffebox.
 */
#ifndef CAFFEBOX_CUDNN_COMPAT_H_
#define CAFFEBOX_CUDNN_COMPAT_H_

#if defined(USE_CUDNN) && !defined(CPU_ONLY)
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>
#endif

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

#ifdef __cplusplus
/* The cache: one instance across translation units (inline, not static), guarded for
 * Caffe's multi-GPU threads. A key is what decides cuDNN's answer; a full cache is
 * emptied rather than grown without bound (nets reshaped to ever new sizes). */
typedef std::vector<long long> caffebox_algo_key_t;

inline std::map<caffebox_algo_key_t, int>& caffebox_algo_cache(std::mutex** lock) {
  static std::map<caffebox_algo_key_t, int> cache;
  static std::mutex mutex;
  *lock = &mutex;
  return cache;
}

inline bool caffebox_add_tensor(caffebox_algo_key_t* key, cudnnTensorDescriptor_t desc) {
  cudnnDataType_t type;
  int n = 0, dims[CUDNN_DIM_MAX], strides[CUDNN_DIM_MAX];
  if (cudnnGetTensorNdDescriptor(desc, CUDNN_DIM_MAX, &type, &n, dims, strides) !=
      CUDNN_STATUS_SUCCESS) return false;
  key->push_back(type);
  key->push_back(n);
  for (int i = 0; i < n; ++i) { key->push_back(dims[i]); key->push_back(strides[i]); }
  return true;
}

inline bool caffebox_add_filter(caffebox_algo_key_t* key, cudnnFilterDescriptor_t desc) {
  cudnnDataType_t type;
  cudnnTensorFormat_t format;
  int n = 0, dims[CUDNN_DIM_MAX];
  if (cudnnGetFilterNdDescriptor(desc, CUDNN_DIM_MAX, &type, &format, &n, dims) !=
      CUDNN_STATUS_SUCCESS) return false;
  key->push_back(type);
  key->push_back(format);
  key->push_back(n);
  for (int i = 0; i < n; ++i) key->push_back(dims[i]);
  return true;
}

inline bool caffebox_add_conv(caffebox_algo_key_t* key, cudnnConvolutionDescriptor_t desc) {
  int n = 0, pads[CUDNN_DIM_MAX], strides[CUDNN_DIM_MAX], dilations[CUDNN_DIM_MAX];
  int groups = 1;
  cudnnConvolutionMode_t mode;
  cudnnDataType_t type;
  cudnnMathType_t math;
  if (cudnnGetConvolutionNdDescriptor(desc, CUDNN_DIM_MAX, &n, pads, strides, dilations,
                                      &mode, &type) != CUDNN_STATUS_SUCCESS ||
      cudnnGetConvolutionGroupCount(desc, &groups) != CUDNN_STATUS_SUCCESS ||
      cudnnGetConvolutionMathType(desc, &math) != CUDNN_STATUS_SUCCESS) return false;
  key->push_back(mode);
  key->push_back(type);
  key->push_back(groups);
  key->push_back(math);
  key->push_back(n);
  for (int i = 0; i < n; ++i) {
    key->push_back(pads[i]); key->push_back(strides[i]); key->push_back(dilations[i]);
  }
  return true;
}

/* CAFFEBOX_CUDNN_ALGO_CACHE=0 asks cuDNN every time, as Caffe did: for comparisons. */
inline bool caffebox_algo_cache_off() {
  static const bool off = std::getenv("CAFFEBOX_CUDNN_ALGO_CACHE") != NULL &&
                          std::strcmp(std::getenv("CAFFEBOX_CUDNN_ALGO_CACHE"), "0") == 0;
  return off;
}

/* The key of one query: which query, the device, the preference and limit, the
 * descriptors. False when a descriptor cannot be read (or the cache is off): then ask
 * cuDNN, uncached. */
inline bool caffebox_algo_key(caffebox_algo_key_t* key, int query, int preference,
                              size_t limit, cudnnTensorDescriptor_t a,
                              cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                              cudnnTensorDescriptor_t b) {
  int device = -1;
  if (caffebox_algo_cache_off() || cudaGetDevice(&device) != cudaSuccess) return false;
  key->push_back(query);
  key->push_back(device);
  key->push_back(preference);
  key->push_back((long long)caffebox_workspace_limit(preference, limit));
  return caffebox_add_tensor(key, a) && caffebox_add_filter(key, w) &&
         caffebox_add_conv(key, conv) && caffebox_add_tensor(key, b);
}

inline bool caffebox_cached_algo(const caffebox_algo_key_t& key, int* algo) {
  std::mutex* lock;
  std::map<caffebox_algo_key_t, int>& cache = caffebox_algo_cache(&lock);
  std::lock_guard<std::mutex> guard(*lock);
  std::map<caffebox_algo_key_t, int>::const_iterator found = cache.find(key);
  if (found == cache.end()) return false;
  *algo = found->second;
  return true;
}

inline void caffebox_remember_algo(const caffebox_algo_key_t& key, int algo) {
  std::mutex* lock;
  std::map<caffebox_algo_key_t, int>& cache = caffebox_algo_cache(&lock);
  std::lock_guard<std::mutex> guard(*lock);
  if (cache.size() >= 4096) cache.clear();
  cache[key] = algo;
}

/* Answer from the cache, or run `ask` (which sets *algo) and remember a success. */
#define CAFFEBOX_CACHED(query, preference, limit, a, w, conv, b, algo, type, ask)     \
  do {                                                                          \
    caffebox_algo_key_t key_;                                                   \
    bool keyed_ = caffebox_algo_key(&key_, (query), (int)(preference), (limit), \
                                    (a), (w), (conv), (b));                     \
    int cached_ = 0;                                                            \
    if (keyed_ && caffebox_cached_algo(key_, &cached_)) {                       \
      *(algo) = (type)cached_;                                                  \
      return CUDNN_STATUS_SUCCESS;                                              \
    }                                                                           \
    cudnnStatus_t asked_ = (ask);                                               \
    if (asked_ == CUDNN_STATUS_SUCCESS && keyed_)                               \
      caffebox_remember_algo(key_, (int)*(algo));                               \
    return asked_;                                                              \
  } while (0)
#else
#define CAFFEBOX_CACHED(query, preference, limit, a, w, conv, b, algo, type, ask) \
  return (ask)
#endif  /* __cplusplus */

static inline cudnnStatus_t caffebox_ask_forward(
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

static inline cudnnStatus_t caffebox_ask_backward_filter(
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

static inline cudnnStatus_t caffebox_ask_backward_data(
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

static inline cudnnStatus_t cudnnGetConvolutionForwardAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnFilterDescriptor_t wDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc,
    cudnnConvolutionFwdPreference_t preference, size_t memoryLimitInBytes,
    cudnnConvolutionFwdAlgo_t* algo) {
  CAFFEBOX_CACHED(0, preference, memoryLimitInBytes, xDesc, wDesc, convDesc, yDesc, algo,
                  cudnnConvolutionFwdAlgo_t,
                  caffebox_ask_forward(handle, xDesc, wDesc, convDesc, yDesc, preference,
                                       memoryLimitInBytes, algo));
}

static inline cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t dwDesc,
    cudnnConvolutionBwdFilterPreference_t preference,
    size_t memoryLimitInBytes, cudnnConvolutionBwdFilterAlgo_t* algo) {
  CAFFEBOX_CACHED(1, preference, memoryLimitInBytes, xDesc, dwDesc, convDesc, dyDesc, algo,
                  cudnnConvolutionBwdFilterAlgo_t,
                  caffebox_ask_backward_filter(handle, xDesc, dyDesc, convDesc, dwDesc,
                                               preference, memoryLimitInBytes, algo));
}

static inline cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc,
    cudnnConvolutionBwdDataPreference_t preference, size_t memoryLimitInBytes,
    cudnnConvolutionBwdDataAlgo_t* algo) {
  CAFFEBOX_CACHED(2, preference, memoryLimitInBytes, dyDesc, wDesc, convDesc, dxDesc, algo,
                  cudnnConvolutionBwdDataAlgo_t,
                  caffebox_ask_backward_data(handle, wDesc, dyDesc, convDesc, dxDesc,
                                             preference, memoryLimitInBytes, algo));
}

#endif  /* CUDNN_MAJOR >= 8 */
#endif  /* USE_CUDNN && !CPU_ONLY */
#endif  /* CAFFEBOX_CUDNN_COMPAT_H_ */
