// The C API of include/deconvtune/deconvtune.h over the C++ API: every entry point catches every
// exception, stores its message in a thread-local string and returns the matching status.
#include <new>
#include <string>

#include "deconvtune/deconvtune.h"
#include "deconvtune/deconvtune.hpp"

struct deconvtune_engine {
  deconvtune::Engine engine;
};

struct deconvtune_plan {
  deconvtune::Plan plan;
};

namespace {

thread_local std::string last_error;

deconvtune_status fail(deconvtune_status status, const char* message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    // No memory for the message: the status still says what kind of failure it was.
  }
  return status;
}

template <typename Body>
deconvtune_status guarded(Body&& body) noexcept {
  try {
    body();
    return DECONVTUNE_OK;
  } catch (const deconvtune::Error& e) {
    return fail(static_cast<deconvtune_status>(e.status()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(DECONVTUNE_ERROR_INTERNAL, "out of host memory");
  } catch (const std::exception& e) {
    return fail(DECONVTUNE_ERROR_INTERNAL, e.what());
  } catch (...) {
    return fail(DECONVTUNE_ERROR_INTERNAL, "unknown error");
  }
}

deconvtune_status null_argument(const char* function, const char* argument) noexcept {
  try {
    last_error = std::string(function) + ": " + argument + " is NULL";
  } catch (...) {
  }
  return DECONVTUNE_ERROR_INVALID_ARGUMENT;
}

}  // namespace

extern "C" {

const char* deconvtune_version(void) { return DECONVTUNE_VERSION; }

const char* deconvtune_last_error(void) { return last_error.c_str(); }

const char* deconvtune_status_name(int status) {
  switch (status) {
    case DECONVTUNE_OK:
      return "DECONVTUNE_OK";
    case DECONVTUNE_ERROR_INVALID_ARGUMENT:
      return "DECONVTUNE_ERROR_INVALID_ARGUMENT";
    case DECONVTUNE_ERROR_BAD_PROBLEM:
      return "DECONVTUNE_ERROR_BAD_PROBLEM";
    case DECONVTUNE_ERROR_NO_GPU:
      return "DECONVTUNE_ERROR_NO_GPU";
    case DECONVTUNE_ERROR_NOT_TUNED:
      return "DECONVTUNE_ERROR_NOT_TUNED";
    case DECONVTUNE_ERROR_CUDA:
      return "DECONVTUNE_ERROR_CUDA";
    case DECONVTUNE_ERROR_COMPILE:
      return "DECONVTUNE_ERROR_COMPILE";
    case DECONVTUNE_ERROR_DATABASE:
      return "DECONVTUNE_ERROR_DATABASE";
    case DECONVTUNE_ERROR_TUNING:
      return "DECONVTUNE_ERROR_TUNING";
    case DECONVTUNE_ERROR_INTERNAL:
      return "DECONVTUNE_ERROR_INTERNAL";
  }
  return "DECONVTUNE_STATUS_UNKNOWN";
}

int deconvtune_gpu_available(void) {
  try {
    std::string reason;
    if (deconvtune::gpu_available(&reason)) return 1;
    fail(DECONVTUNE_ERROR_NO_GPU, reason.c_str());
  } catch (...) {
    fail(DECONVTUNE_ERROR_NO_GPU, "the CUDA driver could not be queried");
  }
  return 0;
}

deconvtune_status deconvtune_engine_create(const char* db_path, int on_miss, int precision,
                                           int device, deconvtune_engine** engine) {
  if (engine == nullptr) return null_argument("deconvtune_engine_create", "engine");
  *engine = nullptr;
  if (on_miss != DECONVTUNE_ON_MISS_HEURISTIC && on_miss != DECONVTUNE_ON_MISS_TUNE &&
      on_miss != DECONVTUNE_ON_MISS_FAIL) {
    return fail(DECONVTUNE_ERROR_INVALID_ARGUMENT,
                "deconvtune_engine_create: on_miss is not a deconvtune_on_miss value");
  }
  if (precision != DECONVTUNE_PRECISION_FP32 && precision != DECONVTUNE_PRECISION_TF32) {
    return fail(DECONVTUNE_ERROR_INVALID_ARGUMENT,
                "deconvtune_engine_create: precision is not a deconvtune_precision value");
  }
  return guarded([&] {
    deconvtune::EngineOptions options;
    if (db_path != nullptr) options.db_path = db_path;
    options.on_miss = static_cast<deconvtune::OnMiss>(on_miss);
    options.precision = static_cast<deconvtune::PrecisionMode>(precision);
    options.device = device;
    *engine = new deconvtune_engine{deconvtune::Engine(std::move(options))};
  });
}

void deconvtune_engine_destroy(deconvtune_engine* engine) { delete engine; }

deconvtune_status deconvtune_engine_plan(deconvtune_engine* engine, const char* problem_json,
                                         deconvtune_plan** plan) {
  if (plan == nullptr) return null_argument("deconvtune_engine_plan", "plan");
  *plan = nullptr;
  if (engine == nullptr) return null_argument("deconvtune_engine_plan", "engine");
  if (problem_json == nullptr) return null_argument("deconvtune_engine_plan", "problem_json");
  return guarded([&] { *plan = new deconvtune_plan{engine->engine.plan_json(problem_json)}; });
}

void deconvtune_plan_destroy(deconvtune_plan* plan) { delete plan; }

deconvtune_status deconvtune_plan_run(const deconvtune_plan* plan, const void* x, const void* w,
                                      const void* bias, void* y, void* stream) {
  if (plan == nullptr) return null_argument("deconvtune_plan_run", "plan");
  return guarded([&] { plan->plan.run(x, w, bias, y, stream); });
}

deconvtune_status deconvtune_plan_output_shape(const deconvtune_plan* plan, int64_t shape[4]) {
  if (plan == nullptr) return null_argument("deconvtune_plan_output_shape", "plan");
  if (shape == nullptr) return null_argument("deconvtune_plan_output_shape", "shape");
  const std::array<int64_t, 4> output = plan->plan.output_shape();
  for (int i = 0; i < 4; ++i) shape[i] = output[i];
  return DECONVTUNE_OK;
}

deconvtune_status deconvtune_plan_x_alignment(const deconvtune_plan* plan, int64_t* bytes) {
  if (plan == nullptr) return null_argument("deconvtune_plan_x_alignment", "plan");
  if (bytes == nullptr) return null_argument("deconvtune_plan_x_alignment", "bytes");
  *bytes = plan->plan.x_alignment();
  return DECONVTUNE_OK;
}

const char* deconvtune_plan_config(const deconvtune_plan* plan) {
  return plan ? plan->plan.config_name().c_str() : nullptr;
}
const char* deconvtune_plan_source(const deconvtune_plan* plan) {
  return plan ? plan->plan.source().c_str() : nullptr;
}
const char* deconvtune_plan_problem_key(const deconvtune_plan* plan) {
  return plan ? plan->plan.problem_key().c_str() : nullptr;
}

}  // extern "C"
