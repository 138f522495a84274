// caffebox's cudnn_compat.h against cuDNN's real headers, with cuDNN's and CUDA's query
// functions replaced by stand-ins that count calls (no GPU needed): the algorithm Caffe asks
// for on every Reshape comes from cuDNN once per device, query and descriptor contents.
// Built and run by tests/test_gpu_image.py inside the gpu build image. Prints one line per
// check; exits 1 at the first failure.
#include <cstdio>
#include <cstdlib>

static int asked[3];  // _v7 calls: forward, backward filter, backward data
static int batch = 16, device = 0;

extern "C" {
cudaError_t cudaGetDevice(int* d) { *d = device; return cudaSuccess; }

cudnnStatus_t cudnnGetTensorNdDescriptor(const cudnnTensorDescriptor_t, int, cudnnDataType_t* t,
                                         int* n, int* dims, int* strides) {
  *t = CUDNN_DATA_FLOAT; *n = 4;
  int shape[4] = {batch, 32, 28, 28};
  for (int i = 0; i < 4; ++i) { dims[i] = shape[i]; strides[i] = 1; }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetFilterNdDescriptor(const cudnnFilterDescriptor_t, int, cudnnDataType_t* t,
                                         cudnnTensorFormat_t* f, int* n, int* dims) {
  *t = CUDNN_DATA_FLOAT; *f = CUDNN_TENSOR_NCHW; *n = 4;
  int shape[4] = {64, 32, 3, 3};
  for (int i = 0; i < 4; ++i) dims[i] = shape[i];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionNdDescriptor(const cudnnConvolutionDescriptor_t, int, int* n,
                                              int* pads, int* strides, int* dilations,
                                              cudnnConvolutionMode_t* mode,
                                              cudnnDataType_t* type) {
  *n = 2; *mode = CUDNN_CROSS_CORRELATION; *type = CUDNN_DATA_FLOAT;
  for (int i = 0; i < 2; ++i) { pads[i] = 1; strides[i] = 1; dilations[i] = 1; }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionGroupCount(cudnnConvolutionDescriptor_t, int* groups) {
  *groups = 1;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t, cudnnMathType_t* math) {
  *math = CUDNN_DEFAULT_MATH;
  return CUDNN_STATUS_SUCCESS;
}

// cuDNN's list, fastest first: one needing 100 MB, one 1 KB, algorithm 0 none.
#define PERF_LIST(perf, count, fast, small)                                \
  (perf)[0].algo = (fast); (perf)[0].status = CUDNN_STATUS_SUCCESS;        \
  (perf)[0].memory = 100 << 20;                                            \
  (perf)[1].algo = (small); (perf)[1].status = CUDNN_STATUS_SUCCESS;       \
  (perf)[1].memory = 1024;                                                 \
  *(count) = 2;

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t, const cudnnTensorDescriptor_t, const cudnnFilterDescriptor_t,
    const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, const int, int* count,
    cudnnConvolutionFwdAlgoPerf_t* perf) {
  ++asked[0];
  PERF_LIST(perf, count, CUDNN_CONVOLUTION_FWD_ALGO_FFT,
            CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t, const cudnnTensorDescriptor_t, const cudnnTensorDescriptor_t,
    const cudnnConvolutionDescriptor_t, const cudnnFilterDescriptor_t, const int, int* count,
    cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  ++asked[1];
  PERF_LIST(perf, count, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t, const cudnnFilterDescriptor_t, const cudnnTensorDescriptor_t,
    const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, const int, int* count,
    cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  ++asked[2];
  PERF_LIST(perf, count, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
  return CUDNN_STATUS_SUCCESS;
}
}  // extern "C"

static int failures = 0;
static void check(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) failures++;
}

int main() {
  const bool off = std::getenv("CAFFEBOX_CUDNN_ALGO_CACHE") != NULL;
  cudnnHandle_t h = NULL;
  cudnnTensorDescriptor_t x = NULL, y = NULL;
  cudnnFilterDescriptor_t w = NULL;
  cudnnConvolutionDescriptor_t c = NULL;
  const size_t limit = 8 << 20;  // BVLC's workspace limit
  cudnnConvolutionFwdAlgo_t f = CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
  cudnnConvolutionBwdFilterAlgo_t bf = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
  cudnnConvolutionBwdDataAlgo_t bd = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;

  for (int reshape = 0; reshape < 3; ++reshape) {  // three forward passes, one shape
    cudnnGetConvolutionForwardAlgorithm(h, x, w, c, y,
        CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT, limit, &f);
    cudnnGetConvolutionBackwardFilterAlgorithm(h, x, y, c, w,
        CUDNN_CONVOLUTION_BWD_FILTER_SPECIFY_WORKSPACE_LIMIT, limit, &bf);
    cudnnGetConvolutionBackwardDataAlgorithm(h, w, y, c, x,
        CUDNN_CONVOLUTION_BWD_DATA_SPECIFY_WORKSPACE_LIMIT, limit, &bd);
  }
  check(f == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM &&
        bf == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 && bd == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
        "the fastest algorithm within the workspace limit, from the cache too");
  if (off) {
    check(asked[0] == 3 && asked[1] == 3 && asked[2] == 3,
          "CAFFEBOX_CUDNN_ALGO_CACHE=0: cuDNN asked on every reshape");
    return failures ? 1 : 0;
  }
  check(asked[0] == 1 && asked[1] == 1 && asked[2] == 1,
        "three reshapes of one shape: cuDNN asked once per query");

  cudnnGetConvolutionForwardAlgorithm(h, x, w, c, y, CUDNN_CONVOLUTION_FWD_PREFER_FASTEST,
                                      limit, &f);
  check(asked[0] == 2 && f == CUDNN_CONVOLUTION_FWD_ALGO_FFT,
        "another preference is another question (the fastest, any workspace)");
  cudnnGetConvolutionForwardAlgorithm(h, x, w, c, y, CUDNN_CONVOLUTION_FWD_NO_WORKSPACE, 0, &f);
  check(asked[0] == 3 && f == (cudnnConvolutionFwdAlgo_t)0, "no workspace: algorithm 0");

  batch = 8;  // a reshape to another batch size
  cudnnGetConvolutionForwardAlgorithm(h, x, w, c, y,
      CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT, limit, &f);
  check(asked[0] == 4, "another shape is asked again");
  batch = 16;
  device = 1;  // the same shape on another GPU
  cudnnGetConvolutionForwardAlgorithm(h, x, w, c, y,
      CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT, limit, &f);
  check(asked[0] == 5, "another device is asked again");
  device = 0;
  cudnnGetConvolutionForwardAlgorithm(h, x, w, c, y,
      CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT, limit, &f);
  check(asked[0] == 5 && f == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        "the first shape and device again: from the cache");
  return failures ? 1 : 0;
}
