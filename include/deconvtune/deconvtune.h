/* deconvtune's C API: fused ConvTranspose2d + elementwise epilogue kernels, tuned per shape.
 *
 * Promises:
 * - Opaque handles; every call that can fail returns a deconvtune_status, and the calling thread's
 *   deconvtune_last_error() then says what failed in words (a bad problem names its JSON field).
 *   No C++ exception crosses this boundary.
 * - A plan's deconvtune_plan_run() does no allocation, compilation, database access or logging: it
 *   checks its arguments and enqueues one kernel on the given stream.
 * - Pointers are device pointers (CUdeviceptr or cudaMalloc'ed memory, e.g. a torch tensor's
 *   data_ptr()); x, w, bias and y are of the problem's "dtype" (float32, bfloat16 or float16) and
 *   x and y of its "layout" (NCHW contiguous, or NHWC: channels_last), w is [C_in, C_out / groups,
 *   kH, kW] contiguous, and y must not overlap the inputs.
 * - Engines use the device's CUDA primary context (the one the CUDA runtime and PyTorch use), so
 *   memory and streams from those work as they are.
 * - Engines and plans may be used from several threads at once.
 *
 * Implemented in engine/c_api.cpp over the C++ API (deconvtune.hpp); exported from
 * libdeconvtune.so. */
#ifndef DECONVTUNE_DECONVTUNE_H
#define DECONVTUNE_DECONVTUNE_H

#include <stdint.h>

#if defined(_WIN32)
#define DECONVTUNE_API
#else
#define DECONVTUNE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum deconvtune_status {
  DECONVTUNE_OK = 0,
  DECONVTUNE_ERROR_INVALID_ARGUMENT =
      1, /* a null handle or pointer, a bad option, misaligned data */
  DECONVTUNE_ERROR_BAD_PROBLEM =
      2,                          /* the problem JSON breaks a rule; the message names the field */
  DECONVTUNE_ERROR_NO_GPU = 3,    /* no CUDA driver, or no GPU (or not that device ordinal) */
  DECONVTUNE_ERROR_NOT_TUNED = 4, /* on_miss is FAIL and the database has no winner */
  DECONVTUNE_ERROR_CUDA = 5,      /* a CUDA driver call failed (the message names it) */
  DECONVTUNE_ERROR_COMPILE = 6,   /* NVRTC could not compile the kernel */
  DECONVTUNE_ERROR_DATABASE = 7,  /* the tuning database could not be opened or read */
  DECONVTUNE_ERROR_TUNING = 8,    /* on_miss is TUNE and tuning found no verified kernel */
  DECONVTUNE_ERROR_INTERNAL = 9   /* anything else (out of host memory, a bug) */
} deconvtune_status;

/* What plan creation does when the database holds no tuned winner for the problem on this GPU. */
typedef enum deconvtune_on_miss {
  DECONVTUNE_ON_MISS_HEURISTIC =
      0,                       /* the nearest tuned problem's winner where legal, else a rule */
  DECONVTUNE_ON_MISS_TUNE = 1, /* tune now (seconds to minutes), store the winner, use it */
  DECONVTUNE_ON_MISS_FAIL = 2  /* return DECONVTUNE_ERROR_NOT_TUNED */
} deconvtune_on_miss;

typedef enum deconvtune_precision {
  DECONVTUNE_PRECISION_FP32 =
      0,                        /* as accurate as true fp32 (max |err| <= 2e-6 on the seed shape) */
  DECONVTUNE_PRECISION_TF32 = 1 /* TF32 tensor cores, as PyTorch's default (<= 5e-4) */
} deconvtune_precision;

/* The problem JSON's "dtype" and "layout" (the names in quotes), as the C++ API's enums. */
typedef enum deconvtune_dtype {
  DECONVTUNE_DTYPE_FLOAT32 = 0,  /* "float32" (the default) */
  DECONVTUNE_DTYPE_BFLOAT16 = 1, /* "bfloat16": fp32 accumulation, y rounded once */
  DECONVTUNE_DTYPE_FLOAT16 = 2   /* "float16": likewise */
} deconvtune_dtype;
typedef enum deconvtune_layout {
  DECONVTUNE_LAYOUT_NCHW = 0, /* "NCHW" (the default) */
  DECONVTUNE_LAYOUT_NHWC = 1  /* "NHWC": channels_last x and y */
} deconvtune_layout;

typedef struct deconvtune_engine deconvtune_engine;
typedef struct deconvtune_plan deconvtune_plan;

/* "0.1.0": the library's version (also the SONAME's major part). */
DECONVTUNE_API const char* deconvtune_version(void);

/* The calling thread's message for its last failed call ("" before any); successful calls leave it.
 */
DECONVTUNE_API const char* deconvtune_last_error(void);

/* "DECONVTUNE_ERROR_NO_GPU" etc. */
DECONVTUNE_API const char* deconvtune_status_name(int status);

/* 1 when a CUDA driver and at least one GPU are present; 0 otherwise, with the reason as the
 * thread's last error. */
DECONVTUNE_API int deconvtune_gpu_available(void);

/* Creates an engine. db_path NULL or "": $DECONVTUNE_DB, else ~/.cache/deconvtune/tuning.db
 * (created when absent). on_miss is a deconvtune_on_miss, precision a deconvtune_precision (the
 * default for problems that do not name one); both are ints so that any value a caller passes is
 * checked (DECONVTUNE_ERROR_INVALID_ARGUMENT) rather than undefined. The GPU is touched only when
 * the first plan is made, so this succeeds on a machine without one. */
DECONVTUNE_API deconvtune_status deconvtune_engine_create(const char* db_path, int on_miss,
                                                          int precision, int device,
                                                          deconvtune_engine** engine);
/* Frees the engine (NULL is allowed). Plans made by it stay usable until destroyed themselves. */
DECONVTUNE_API void deconvtune_engine_destroy(deconvtune_engine* engine);

/* Makes (or finds in the engine's cache) the plan for a problem given as JSON with PyTorch's
 * ConvTranspose2d argument names, e.g.
 *   {"batch": 8, "in_channels": 64, "out_channels": 64, "height": 32, "width": 32,
 *    "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "bias": true,
 *    "epilogue": "mish,add:0.5,hardtanh:-1:1,mul:2", "precision": "tf32",
 *    "dtype": "bfloat16", "layout": "NHWC"}
 * The first plan of a problem may compile a kernel (about a second); later ones come from memory.
 */
DECONVTUNE_API deconvtune_status deconvtune_engine_plan(deconvtune_engine* engine,
                                                        const char* problem_json,
                                                        deconvtune_plan** plan);
DECONVTUNE_API void deconvtune_plan_destroy(deconvtune_plan* plan);

/* y = epilogue(conv_transpose2d(x, w, bias)) on `stream` (a CUstream or cudaStream_t; NULL: the
 * legacy default stream). bias must be NULL exactly when the problem has no bias. Asynchronous: a
 * kernel fault shows up at the next synchronising CUDA call. */
DECONVTUNE_API deconvtune_status deconvtune_plan_run(const deconvtune_plan* plan, const void* x,
                                                     const void* w, const void* bias, void* y,
                                                     void* stream);

/* The problem's output shape [N, C_out, H_out, W_out] (logical, in either layout). */
DECONVTUNE_API deconvtune_status deconvtune_plan_output_shape(const deconvtune_plan* plan,
                                                              int64_t shape[4]);
/* The byte alignment deconvtune_plan_run requires of x (its kernel's widest read of x: 16 for
 * 16-byte vectors or tensor map boxes, else one element); a caller with an x that starts
 * elsewhere copies it to an aligned buffer first. */
DECONVTUNE_API deconvtune_status deconvtune_plan_x_alignment(const deconvtune_plan* plan,
                                                             int64_t* bytes);
/* Text owned by the plan: the kernel config's name, where it came from ("tuned", "tuned-now",
 * "nearest:<problem key>", optionally followed by " (tuned on <GPU>, same arch and SM count)",
 * "rule"), and the problem's canonical key. NULL for a NULL plan. */
DECONVTUNE_API const char* deconvtune_plan_config(const deconvtune_plan* plan);
DECONVTUNE_API const char* deconvtune_plan_source(const deconvtune_plan* plan);
DECONVTUNE_API const char* deconvtune_plan_problem_key(const deconvtune_plan* plan);

#ifdef __cplusplus
}
#endif

#endif /* DECONVTUNE_DECONVTUNE_H */
