/* The C API (include/deconvtune/deconvtune.h), compiled as C: version, status names, NULL
 * arguments, bad problem JSON naming the field, a thread-local last error, and without a GPU a
 * clear DECONVTUNE_ERROR_NO_GPU (with a GPU: a plan, and run()'s argument errors).
 * Usage: test_api_c DB_PATH EXPECTED_VERSION. Exit 0 when every check passes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvtune/deconvtune.h"

static int failures = 0;

#define CHECK(condition)                                                                           \
  do {                                                                                             \
    if (!(condition)) {                                                                            \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, #condition, \
              deconvtune_last_error());                                                            \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

#define CHECK_ERROR(call, expected_status, mention)                                               \
  do {                                                                                            \
    deconvtune_status status_ = (call);                                                           \
    if (status_ != (expected_status)) {                                                           \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #call,     \
              deconvtune_status_name(status_), deconvtune_status_name(expected_status),           \
              deconvtune_last_error());                                                           \
      ++failures;                                                                                 \
    } else if (strstr(deconvtune_last_error(), (mention)) == NULL) {                              \
      fprintf(stderr, "%s:%d: the message of %s does not mention '%s': %s\n", __FILE__, __LINE__, \
              #call, (mention), deconvtune_last_error());                                         \
      ++failures;                                                                                 \
    }                                                                                             \
  } while (0)

static const char* const kSmallProblem =
    "{\"batch\": 2, \"in_channels\": 8, \"out_channels\": 8, \"height\": 8, \"width\": 8, "
    "\"kernel_size\": 3, \"stride\": 2, \"padding\": 1, \"output_padding\": 1}";

/* Another thread's failure must not show in this thread's last error. */
static void* fail_in_thread(void* message_out) {
  deconvtune_engine* engine = NULL;
  deconvtune_status status =
      deconvtune_engine_create(NULL, 99, DECONVTUNE_PRECISION_FP32, 0, &engine);
  strncpy((char*)message_out, deconvtune_last_error(), 255);
  return status == DECONVTUNE_ERROR_INVALID_ARGUMENT ? message_out : NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DB_PATH EXPECTED_VERSION\n", argv[0]);
    return 2;
  }
  const char* db_path = argv[1];
  CHECK(strcmp(deconvtune_version(), argv[2]) == 0);
  CHECK(strcmp(deconvtune_last_error(), "") == 0);
  CHECK(strcmp(deconvtune_status_name(DECONVTUNE_ERROR_NO_GPU), "DECONVTUNE_ERROR_NO_GPU") == 0);
  CHECK(strcmp(deconvtune_status_name(1234), "DECONVTUNE_STATUS_UNKNOWN") == 0);

  /* NULL arguments name themselves. */
  CHECK_ERROR(deconvtune_engine_create(db_path, DECONVTUNE_ON_MISS_HEURISTIC,
                                       DECONVTUNE_PRECISION_FP32, 0, NULL),
              DECONVTUNE_ERROR_INVALID_ARGUMENT, "engine is NULL");
  deconvtune_plan* plan = NULL;
  CHECK_ERROR(deconvtune_engine_plan(NULL, kSmallProblem, &plan), DECONVTUNE_ERROR_INVALID_ARGUMENT,
              "engine is NULL");
  CHECK_ERROR(deconvtune_plan_run(NULL, NULL, NULL, NULL, NULL, NULL),
              DECONVTUNE_ERROR_INVALID_ARGUMENT, "plan is NULL");
  CHECK_ERROR(deconvtune_plan_output_shape(NULL, NULL), DECONVTUNE_ERROR_INVALID_ARGUMENT,
              "plan is NULL");
  int64_t x_alignment = 0;
  CHECK_ERROR(deconvtune_plan_x_alignment(NULL, &x_alignment), DECONVTUNE_ERROR_INVALID_ARGUMENT,
              "plan is NULL");
  CHECK(deconvtune_plan_config(NULL) == NULL);
  deconvtune_engine_destroy(NULL);
  deconvtune_plan_destroy(NULL);

  /* Bad enum values. */
  deconvtune_engine* engine = NULL;
  CHECK_ERROR(deconvtune_engine_create(db_path, 7, DECONVTUNE_PRECISION_FP32, 0, &engine),
              DECONVTUNE_ERROR_INVALID_ARGUMENT, "on_miss");
  CHECK_ERROR(deconvtune_engine_create(db_path, DECONVTUNE_ON_MISS_HEURISTIC, 5, 0, &engine),
              DECONVTUNE_ERROR_INVALID_ARGUMENT, "precision");
  CHECK(engine == NULL);

  /* The last error is per thread. */
  char other_message[256] = {0};
  pthread_t thread;
  void* thread_result = NULL;
  CHECK(pthread_create(&thread, NULL, fail_in_thread, other_message) == 0);
  CHECK(pthread_join(thread, &thread_result) == 0);
  CHECK(thread_result != NULL);
  CHECK(strstr(other_message, "on_miss") != NULL);
  CHECK(strstr(deconvtune_last_error(), "precision") != NULL); /* still this thread's own */

  if (deconvtune_engine_create(db_path, DECONVTUNE_ON_MISS_HEURISTIC, DECONVTUNE_PRECISION_FP32, 0,
                               &engine) != DECONVTUNE_OK) {
    fprintf(stderr, "deconvtune_engine_create(%s): %s\n", db_path, deconvtune_last_error());
    return 1;
  }
  CHECK(engine != NULL);
  CHECK_ERROR(deconvtune_engine_plan(engine, NULL, &plan), DECONVTUNE_ERROR_INVALID_ARGUMENT,
              "problem_json is NULL");
  CHECK_ERROR(deconvtune_engine_plan(engine, kSmallProblem, NULL),
              DECONVTUNE_ERROR_INVALID_ARGUMENT, "plan is NULL");

  /* Bad problems name the field. */
  CHECK_ERROR(deconvtune_engine_plan(engine, "{\"batch\": ", &plan), DECONVTUNE_ERROR_BAD_PROBLEM,
              "malformed JSON");
  CHECK(plan == NULL);
  CHECK_ERROR(deconvtune_engine_plan(engine,
                                     "{\"batch\": 2, \"in_channels\": 8, \"out_channels\": 8, "
                                     "\"height\": 8, \"width\": 8, \"kernel_size\": 3, "
                                     "\"stride\": 2, \"output_padding\": 3}",
                                     &plan),
              DECONVTUNE_ERROR_BAD_PROBLEM, "output_padding");
  CHECK_ERROR(deconvtune_engine_plan(engine,
                                     "{\"batch\": 2, \"in_channels\": 6, \"out_channels\": 8, "
                                     "\"height\": 8, \"width\": 8, \"kernel_size\": 3, "
                                     "\"groups\": 4}",
                                     &plan),
              DECONVTUNE_ERROR_BAD_PROBLEM, "in_channels");
  CHECK_ERROR(deconvtune_engine_plan(engine,
                                     "{\"batch\": 2, \"in_channels\": 8, \"out_channels\": 8, "
                                     "\"height\": 8, \"width\": 8, \"kernel_size\": 3, "
                                     "\"dtype\": \"float64\"}",
                                     &plan),
              DECONVTUNE_ERROR_BAD_PROBLEM, "'dtype'");
  CHECK_ERROR(deconvtune_engine_plan(engine,
                                     "{\"batch\": 2, \"in_channels\": 8, \"out_channels\": 8, "
                                     "\"height\": 8, \"width\": 8, \"kernel_size\": 3, "
                                     "\"layout\": \"channels_last\"}",
                                     &plan),
              DECONVTUNE_ERROR_BAD_PROBLEM, "'layout'");
  CHECK_ERROR(deconvtune_engine_plan(engine,
                                     "{\"batch\": 2, \"in_channels\": 8, \"out_channels\": 8, "
                                     "\"height\": 8, \"width\": 8, \"kernel\": 3}",
                                     &plan),
              DECONVTUNE_ERROR_BAD_PROBLEM, "kernel");

  if (!deconvtune_gpu_available()) {
    /* No GPU: the reason is the last error, and planning says NO_GPU clearly. */
    CHECK(strlen(deconvtune_last_error()) > 0);
    CHECK_ERROR(deconvtune_engine_plan(engine, kSmallProblem, &plan), DECONVTUNE_ERROR_NO_GPU,
                "GPU");
    CHECK(plan == NULL);
    printf("no GPU: %s\n", deconvtune_last_error());
  } else {
    CHECK(deconvtune_engine_plan(engine, kSmallProblem, &plan) == DECONVTUNE_OK);
    if (plan != NULL) {
      int64_t shape[4] = {0, 0, 0, 0};
      CHECK(deconvtune_plan_output_shape(plan, shape) == DECONVTUNE_OK);
      CHECK(shape[0] == 2 && shape[1] == 8 && shape[2] == 16 && shape[3] == 16);
      CHECK_ERROR(deconvtune_plan_x_alignment(plan, NULL), DECONVTUNE_ERROR_INVALID_ARGUMENT,
                  "bytes is NULL");
      CHECK(deconvtune_plan_x_alignment(plan, &x_alignment) == DECONVTUNE_OK);
      CHECK(x_alignment == 4 || x_alignment == 16); /* float32: one element or 16 bytes */
      CHECK(strlen(deconvtune_plan_config(plan)) > 0);
      CHECK(strcmp(deconvtune_plan_source(plan), "rule") == 0);
      CHECK(strstr(deconvtune_plan_problem_key(plan), "convT2d:n2:ci8:co8") != NULL);
      CHECK_ERROR(deconvtune_plan_run(plan, NULL, NULL, NULL, NULL, NULL),
                  DECONVTUNE_ERROR_INVALID_ARGUMENT, "x is a null pointer");
      printf("plan: %s (%s)\n", deconvtune_plan_config(plan), deconvtune_plan_source(plan));
    }
    deconvtune_plan_destroy(plan);
  }
  deconvtune_engine_destroy(engine);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
