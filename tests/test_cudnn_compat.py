"""docker/cudnn_compat.h's choice of algorithm and math type, against a stub cuDNN compiled
here with gcc (no GPU, no cuDNN): FP32 unless CAFFEBOX_CUDNN_TF32=1, the descriptor set
to the math type the choice was listed with, and no silent algorithm 0 when nothing fits."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from caffebox import paths

from .support.services import missing

# Only what cudnn_compat.h uses, with cuDNN 9's names and values (written here).
STUB_H = r"""
#pragma once
#include <stddef.h>
#define CUDNN_MAJOR 9
typedef enum { CUDNN_STATUS_SUCCESS = 0, CUDNN_STATUS_NOT_SUPPORTED = 9 } cudnnStatus_t;
typedef enum { CUDNN_DEFAULT_MATH = 0, CUDNN_TENSOR_OP_MATH = 1,
               CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2, CUDNN_FMA_MATH = 3 } cudnnMathType_t;
typedef struct { cudnnMathType_t math; } cudnnConvolutionStruct;
typedef void* cudnnHandle_t;
typedef void* cudnnTensorDescriptor_t;
typedef void* cudnnFilterDescriptor_t;
typedef cudnnConvolutionStruct* cudnnConvolutionDescriptor_t;
#define CUDNN_CONVOLUTION_FWD_ALGO_COUNT 8
#define CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT 7
#define CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT 6
typedef int cudnnConvolutionFwdAlgo_t;
typedef int cudnnConvolutionBwdFilterAlgo_t;
typedef int cudnnConvolutionBwdDataAlgo_t;
#define PERF(T) typedef struct { T algo; cudnnStatus_t status; float time; size_t memory; \
                                 int determinism; cudnnMathType_t mathType; } T##Perf_t;
typedef int cudnnConvolutionFwdAlgo; PERF(cudnnConvolutionFwdAlgo)
typedef int cudnnConvolutionBwdFilterAlgo; PERF(cudnnConvolutionBwdFilterAlgo)
typedef int cudnnConvolutionBwdDataAlgo; PERF(cudnnConvolutionBwdDataAlgo)
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m);
#define V7(NAME, PERF_T, A, B, C, D) cudnnStatus_t NAME(cudnnHandle_t h, A a, B b, \
    cudnnConvolutionDescriptor_t c, D d, int requested, int* count, PERF_T* perf);
V7(cudnnGetConvolutionForwardAlgorithm_v7, cudnnConvolutionFwdAlgoPerf_t,
   cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, 0, cudnnTensorDescriptor_t)
V7(cudnnGetConvolutionBackwardFilterAlgorithm_v7, cudnnConvolutionBwdFilterAlgoPerf_t,
   cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, 0, cudnnFilterDescriptor_t)
V7(cudnnGetConvolutionBackwardDataAlgorithm_v7, cudnnConvolutionBwdDataAlgoPerf_t,
   cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, 0, cudnnTensorDescriptor_t)
"""

# cuDNN's answer (fastest first) as a TF32-capable card gives it: a TF32 algorithm first,
# then FP32 ones. Which list: argv[1]; the preference and limit: argv[2], argv[3].
MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "cudnn.h"
#include "cudnn_compat.h"
static cudnnMathType_t asked_with;
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  d->math = m; return CUDNN_STATUS_SUCCESS; }
static const char* list;
#define FILL(PERF_T) { \
  PERF_T tf32 = {5, CUDNN_STATUS_SUCCESS, 1.0f, 100, 1, CUDNN_TENSOR_OP_MATH}; \
  PERF_T fast = {2, CUDNN_STATUS_SUCCESS, 2.0f, 4096, 1, CUDNN_DEFAULT_MATH}; \
  PERF_T none = {1, CUDNN_STATUS_SUCCESS, 3.0f, 0, 1, CUDNN_DEFAULT_MATH}; \
  PERF_T bad = {0, CUDNN_STATUS_NOT_SUPPORTED, -1.0f, 0, 1, CUDNN_DEFAULT_MATH}; \
  asked_with = c->math; \
  if (list[0] == 'n') { perf[0] = tf32; perf[1] = bad; *count = 2; } \
  else if (list[0] == 'w') { perf[0] = tf32; perf[1] = fast; perf[2] = bad; *count = 3; } \
  else { perf[0] = tf32; perf[1] = fast; perf[2] = none; perf[3] = bad; *count = 4; } \
  return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h,
    cudnnTensorDescriptor_t a, cudnnFilterDescriptor_t b, cudnnConvolutionDescriptor_t c,
    cudnnTensorDescriptor_t d, int requested, int* count, cudnnConvolutionFwdAlgoPerf_t* perf)
    FILL(cudnnConvolutionFwdAlgoPerf_t)
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h,
    cudnnTensorDescriptor_t a, cudnnTensorDescriptor_t b, cudnnConvolutionDescriptor_t c,
    cudnnFilterDescriptor_t d, int requested, int* count,
    cudnnConvolutionBwdFilterAlgoPerf_t* perf) FILL(cudnnConvolutionBwdFilterAlgoPerf_t)
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h,
    cudnnFilterDescriptor_t a, cudnnTensorDescriptor_t b, cudnnConvolutionDescriptor_t c,
    cudnnTensorDescriptor_t d, int requested, int* count,
    cudnnConvolutionBwdDataAlgoPerf_t* perf) FILL(cudnnConvolutionBwdDataAlgoPerf_t)
int main(int argc, char** argv) {
  list = argv[1];
  int pref = atoi(argv[2]);
  size_t limit = (size_t)atol(argv[3]);
  cudnnConvolutionStruct desc = {CUDNN_DEFAULT_MATH};
  cudnnConvolutionFwdAlgo_t f = -1; cudnnConvolutionBwdFilterAlgo_t w = -1;
  cudnnConvolutionBwdDataAlgo_t d = -1;
  cudnnStatus_t s1 = cudnnGetConvolutionForwardAlgorithm(0, 0, 0, &desc, 0, pref, limit, &f);
  cudnnMathType_t after_fwd = desc.math, asked_fwd = asked_with;
  cudnnStatus_t s2 = cudnnGetConvolutionBackwardFilterAlgorithm(0, 0, 0, &desc, 0, pref,
                                                                limit, &w);
  cudnnStatus_t s3 = cudnnGetConvolutionBackwardDataAlgorithm(0, 0, 0, &desc, 0, pref,
                                                              limit, &d);
  printf("status %d %d %d algos %d %d %d asked %d math %d\n", s1, s2, s3, f, w, d,
         asked_fwd, after_fwd);
  return 0;
}
"""


@pytest.fixture(scope="module")
def pick(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        missing("no gcc", "gcc is needed to compile the cuDNN stub test")
    folder = tmp_path_factory.mktemp("cudnn")
    (folder / "cudnn.h").write_text(STUB_H)
    (folder / "main.c").write_text(MAIN_C)
    shutil.copy(paths.DOCKER_DIR / "cudnn_compat.h", folder / "cudnn_compat.h")
    binary = folder / "pick"
    subprocess.run([gcc, "-std=c99", "-Wall", "-Werror", "-DUSE_CUDNN", "-I", str(folder),
                    "-o", str(binary), str(folder / "main.c")], check=True)  # fmt: skip

    def run(listing: str, preference: int, limit: int, tf32: bool = False):
        env = {**os.environ, "CAFFEBOX_CUDNN_TF32": "1" if tf32 else "0"}
        done = subprocess.run([str(binary), listing, str(preference), str(limit)], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip(), done.stderr

    return run


FMA, TENSOR_OP = 3, 1


def test_fp32_unless_tf32_is_asked_for(pick):
    out, _ = pick("all", 1, 0)  # PREFER_FASTEST: any workspace
    assert out == f"status 0 0 0 algos 2 2 2 asked {FMA} math {FMA}"  # not the TF32 algo 5
    out, _ = pick("all", 1, 0, tf32=True)
    assert out == f"status 0 0 0 algos 5 5 5 asked 0 math {TENSOR_OP}"


def test_the_workspace_limit_holds(pick):
    out, _ = pick("all", 2, 1000)  # SPECIFY_WORKSPACE_LIMIT of 1000 bytes
    assert out == f"status 0 0 0 algos 1 1 1 asked {FMA} math {FMA}"
    out, _ = pick("all", 0, 0)  # NO_WORKSPACE
    assert out.startswith("status 0 0 0 algos 1 1 1")


def test_nothing_fits_is_said_never_a_silent_zero(pick):
    out, err = pick("wide", 0, 0)  # no FP32 algorithm without workspace
    assert out.startswith("status 0 0 0 algos 2 2 2"), out
    assert "no forward algorithm fits the workspace limit of 0 bytes; taking algorithm 2" in err
    out, _ = pick("nothing", 1, 0)  # only TF32 and a failure: nothing FP32 at all
    assert out.startswith("status 9 9 9 algos -1 -1 -1"), out
