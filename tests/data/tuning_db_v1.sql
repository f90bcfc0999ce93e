-- A tuning DB as schema version 1 wrote it (the first release of the tuning DB: no NVRTC version
-- per device, no spills or compile time per trial, no cubin cache). tests/test_db.cpp copies the
-- committed tuning_db_v1.db and checks that opening it migrates to the current schema and keeps
-- every row. Rebuild the .db with tests/data/make_tuning_db_v1.sh (it runs this file through the
-- sqlite3 shell); the schema below must stay exactly version 1 of tuning_db/tuning_db.cpp.
PRAGMA application_id = 1146373186;  -- 0x44544442, "DTDB"
PRAGMA user_version = 1;
BEGIN;
CREATE TABLE devices (
  key TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  arch TEXT NOT NULL,
  sm_count INTEGER NOT NULL,
  driver_version INTEGER NOT NULL);
CREATE TABLE problems (
  key TEXT PRIMARY KEY NOT NULL,
  spec TEXT NOT NULL);
CREATE TABLE trials (
  id INTEGER PRIMARY KEY,
  problem_key TEXT NOT NULL REFERENCES problems(key),
  device_key TEXT NOT NULL REFERENCES devices(key),
  generator_version TEXT NOT NULL,
  precision TEXT NOT NULL,
  config_name TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  median_ms REAL NOT NULL,
  min_ms REAL NOT NULL,
  max_ms REAL NOT NULL,
  max_error REAL,
  registers INTEGER NOT NULL,
  shared_bytes INTEGER NOT NULL,
  measured_at TEXT NOT NULL);
CREATE INDEX trials_by_key ON trials (problem_key, device_key, generator_version, precision);
CREATE TABLE winners (
  problem_key TEXT NOT NULL REFERENCES problems(key),
  device_key TEXT NOT NULL REFERENCES devices(key),
  generator_version TEXT NOT NULL,
  precision TEXT NOT NULL,
  config_name TEXT NOT NULL,
  median_ms REAL NOT NULL,
  max_error REAL NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (problem_key, device_key, generator_version, precision));

INSERT INTO devices VALUES
  ('NVIDIA H100 80GB HBM3|sm_90|132', 'NVIDIA H100 80GB HBM3', 'sm_90', 132, 13000),
  ('NVIDIA A100-SXM4-80GB|sm_80|108', 'NVIDIA A100-SXM4-80GB', 'sm_80', 108, 12080);
INSERT INTO problems VALUES
  ('convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:d1x1:g1:bias:float32:NCHW:tf32|mish,add:0.5,hardtanh:-1:1,mul:2',
   '{"batch":128,"bias":true,"dilation":[1,1],"epilogue":"mish,add:0.5,hardtanh:-1:1,mul:2","groups":1,"height":128,"in_channels":64,"kernel_size":[3,3],"out_channels":64,"output_padding":[1,1],"padding":[1,1],"precision":"tf32","stride":[2,2],"width":128}'),
  ('convT2d:n16:ci32:co48:h33:w17:k3x5:s2x2:p1x1:op1x1:d1x1:g2:bias:float32:NCHW:fp32|gelu',
   '{"batch":16,"bias":true,"dilation":[1,1],"epilogue":"gelu","groups":2,"height":33,"in_channels":32,"kernel_size":[3,5],"out_channels":48,"output_padding":[1,1],"padding":[1,1],"precision":"fp32","stride":[2,2],"width":17}');
INSERT INTO trials (problem_key, device_key, generator_version, precision, config_name, status, reason,
                    median_ms, min_ms, max_ms, max_error, registers, shared_bytes, measured_at) VALUES
  ('convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:d1x1:g1:bias:float32:NCHW:tf32|mish,add:0.5,hardtanh:-1:1,mul:2',
   'NVIDIA H100 80GB HBM3|sm_90|132', 'gen-5be0c1a2d3f4', 'tf32',
   'igemm_tf32_bn32_rp2_cp64_wm4_wn4_st1_v4_mishfast', 'ok', '', 5.22, 5.19, 5.31, 0.00041, 168, 200704,
   '2026-11-20T10:15:02.123456Z'),
  ('convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:d1x1:g1:bias:float32:NCHW:tf32|mish,add:0.5,hardtanh:-1:1,mul:2',
   'NVIDIA H100 80GB HBM3|sm_90|132', 'gen-5be0c1a2d3f4', 'tf32',
   'direct_ffma_t256_c4_mishfast', 'ok', '', 55.8, 55.1, 57.0, 0.0000015, 64, 0,
   '2026-11-20T10:15:09.500000Z'),
  ('convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:d1x1:g1:bias:float32:NCHW:tf32|mish,add:0.5,hardtanh:-1:1,mul:2',
   'NVIDIA H100 80GB HBM3|sm_90|132', 'gen-5be0c1a2d3f4', 'tf32',
   'igemm_tf32_bn64_rp2_cp64_wm4_wn4_st2_v4_mishfast', 'launch_failed',
   'CUDA_ERROR_INVALID_VALUE: 262144 bytes of shared memory requested, 232448 available', 0, 0, 0, 0, 168, 262144,
   '2026-11-20T10:15:11.000001Z'),
  ('convT2d:n16:ci32:co48:h33:w17:k3x5:s2x2:p1x1:op1x1:d1x1:g2:bias:float32:NCHW:fp32|gelu',
   'NVIDIA A100-SXM4-80GB|sm_80|108', 'gen-5be0c1a2d3f4', 'fp32',
   'direct_ffma_t128_c2_mishexact', 'ok', '', 0.0731, 0.0712, 0.0799, 0.00000031, 40, 0,
   '2026-11-21T08:00:00.000000Z'),
  ('convT2d:n16:ci32:co48:h33:w17:k3x5:s2x2:p1x1:op1x1:d1x1:g2:bias:float32:NCHW:fp32|gelu',
   'NVIDIA A100-SXM4-80GB|sm_80|108', 'gen-5be0c1a2d3f4', 'fp32',
   'igemm_3xtf32_bn32_rp1_cp32_wm2_wn2_st1_v1_mishexact', 'wrong',
   'y[1, 3, 0, 16] = nan, the reference says 0.25 (and 17 other elements)', 0.051, 0.05, 0.06, NULL, 96, 34816,
   '2026-11-21T08:00:03.250000Z');
INSERT INTO winners VALUES
  ('convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:d1x1:g1:bias:float32:NCHW:tf32|mish,add:0.5,hardtanh:-1:1,mul:2',
   'NVIDIA H100 80GB HBM3|sm_90|132', 'gen-5be0c1a2d3f4', 'tf32',
   'igemm_tf32_bn32_rp2_cp64_wm4_wn4_st1_v4_mishfast', 5.22, 0.00041, '2026-11-20T10:15:02.123456Z'),
  ('convT2d:n16:ci32:co48:h33:w17:k3x5:s2x2:p1x1:op1x1:d1x1:g2:bias:float32:NCHW:fp32|gelu',
   'NVIDIA A100-SXM4-80GB|sm_80|108', 'gen-5be0c1a2d3f4', 'fp32',
   'direct_ffma_t128_c2_mishexact', 0.0731, 0.00000031, '2026-11-21T08:00:00.000000Z');
COMMIT;
