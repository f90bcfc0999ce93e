#!/usr/bin/env python3
"""deconvtune benchmark driver: ConvTranspose2d + elementwise epilogue, deconvtune vs PyTorch on one GPU.

For every problem in bench/problems.jsonl it measures, in one process on one GPU, in the problem's dtype and layout:
  - the memory floor: (bytes of x + y + W) / device-to-device copy bandwidth (measured once per run),
  - PyTorch eager with cuDNN TF32 on (PyTorch's default) and off (true fp32),
  - torch.compile (mode "default"),
  - the seed's ModelNew (cuDNN conv + one fused elementwise kernel), where its fixed epilogue applies,
  - every deconvtune config the tool lists, in both precisions (fp32, tf32), via `deconvtune run`,
and writes bench.json (every raw number) and bench.md (tables) to --out.

Typical use on the GPU machine (see bench/README.md):
  python3 bench/run_bench.py --deconvtune build/tools/deconvtune [--only seed,stride1] [--reps 20]
The 16-bit and channels_last set (problems carry "dtype" and "layout", as the CLI takes them):
  python3 bench/run_bench.py --deconvtune build/tools/deconvtune --problems bench/problems_16bit.jsonl
CPU-only check of the CPU-side pieces (problem loading, epilogue chain in torch, tool-output parsing
against a fake binary, table formatting with fake numbers):
  python3 bench/run_bench.py --selftest [--reference-dir DIR]
Re-render tables from earlier bench.json files (e.g. a benchmark split over several runs):
  python3 bench/run_bench.py --render a/bench.json b/bench.json --out DIR
"""

import argparse
import copy
import datetime
import gc
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_CHAIN = "mish,add:0.5,hardtanh:-1:1,mul:2"
PRECISIONS = ("fp32", "tf32")
PAIR_FIELDS = ("kernel_size", "stride", "padding", "output_padding", "dilation")
INT_FIELDS = ("batch", "in_channels", "out_channels", "height", "width", "groups")
REQUIRED_FIELDS = ("name",) + INT_FIELDS[:5] + PAIR_FIELDS + ("groups", "bias", "epilogue", "precision")
# x, W, bias and y are all in the problem's dtype (the CLI's names; a line without one is float32, as for
# the CLI); "precision" only selects the math inside the kernel, which accumulates in fp32 for every dtype.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# The roofline's tensor-core rate: dense TF32 wgmma (m64n64k8 and m64n128k8, operands in shared
# memory) measured on the H200, bench/results/2026-12-01-h200-mc2-probe/ (483-486 TFLOP/s).
WGMMA_TF32_TFLOPS = 485.0
# TF32 products per multiply-add under each precision's contract: one for tf32 (both operands
# rounded to nearest, as cuDNN), three for fp32 (3xTF32). 16-bit tensors take one under either.
TF32_PRODUCTS = {"tf32": 1, "fp32": 3}
LAYOUTS = ("NCHW", "NHWC")  # x's and y's (NHWC = PyTorch's channels_last); W is contiguous in both
TENSOR_BUDGET_BYTES = 3 * 2**30  # x + y + W of one problem should stay under this (keeps runs sane)
DEFAULT_CONFIGS_CMD = "{bin} inspect --problem {problem} --list-configs --json --precision {precision}"


def dtype_of(p):
    return p.get("dtype", "float32")


def layout_of(p):
    return p.get("layout", "NCHW")


def log(*a):
    print(*a, flush=True)


# The benchmark runs on "cuda"; the self-test drives the very same code path on "cpu" (DEVICE is set once
# in main), so these two helpers are the only place that tells the two apart.
DEVICE = "cuda"


def sync():
    import torch
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def free_cache():
    import torch
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------------------------

def as_pair(value, field):
    """PyTorch accepts an int or an (h, w) pair for these fields; normalise to a tuple of two ints."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected int or [h, w], got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (value[0], value[1])
    raise ValueError(f"{field}: expected int or [h, w], got {value!r}")


# Epilogue ops: name -> (number of numeric arguments, defaults when omitted or None when required).
EPILOGUE_OPS = {
    "mish": (0, ()), "relu": (0, ()), "gelu": (0, ()), "silu": (0, ()), "sigmoid": (0, ()),
    "tanh": (0, ()), "softplus": (0, ()),
    "add": (1, None), "mul": (1, None),
    "leaky_relu": (1, (0.01,)),  # PyTorch's default negative slope when written bare
    "hardtanh": (2, None), "clamp": (2, None),
}


def parse_epilogue(text):
    """'mish,add:0.5,hardtanh:-1:1,mul:2' -> [('mish', ()), ('add', (0.5,)), ('hardtanh', (-1.0, 1.0)), ...]."""
    if not isinstance(text, str):
        raise ValueError(f"epilogue: expected a chain text, got {text!r}")
    ops = []
    for item in (s.strip() for s in text.split(",")) if text.strip() else []:
        if not item:
            raise ValueError(f"epilogue: empty op in {text!r}")
        name, *raw = item.split(":")
        if name not in EPILOGUE_OPS:
            raise ValueError(f"epilogue: unknown op {name!r} in {text!r} (known: {', '.join(EPILOGUE_OPS)})")
        arity, defaults = EPILOGUE_OPS[name]
        if not raw and defaults is not None:
            raw_vals = defaults
        elif len(raw) != arity:
            raise ValueError(f"epilogue: {name} takes {arity} argument(s) ({name}{':x' * arity}), got {item!r}")
        else:
            try:
                raw_vals = tuple(float(r) for r in raw)
            except ValueError:
                raise ValueError(f"epilogue: non-numeric argument in {item!r}") from None
        if any(not math.isfinite(v) for v in raw_vals):
            raise ValueError(f"epilogue: non-finite argument in {item!r}")
        if name in ("hardtanh", "clamp") and raw_vals[0] > raw_vals[1]:
            raise ValueError(f"epilogue: {name} needs lo <= hi, got {item!r}")
        ops.append((name, tuple(raw_vals)))
    return ops


def geometry(p):
    """Shapes, byte counts and multiply-adds of one problem (the formula PyTorch documents)."""
    (kh, kw), (sh, sw) = as_pair(p["kernel_size"], "kernel_size"), as_pair(p["stride"], "stride")
    (ph, pw), (oph, opw) = as_pair(p["padding"], "padding"), as_pair(p["output_padding"], "output_padding")
    dh, dw = as_pair(p["dilation"], "dilation")
    n, ci, co, h, w, g = (p[f] for f in INT_FIELDS)
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    x_shape, w_shape, y_shape = [n, ci, h, w], [ci, co // g, kh, kw], [n, co, ho, wo]
    nbytes = lambda s: math.prod(s) * DTYPE_BYTES[dtype_of(p)]  # the floor moves x, y and W in that type
    return {
        "x_shape": x_shape, "w_shape": w_shape, "y_shape": y_shape,
        "x_bytes": nbytes(x_shape), "y_bytes": nbytes(y_shape), "w_bytes": nbytes(w_shape),
        # Every input pixel meets every tap of its group's kernel; taps that land in the cropped
        # padding border are counted too, so this slightly overstates the work at the edges.
        "gmac": n * h * w * ci * (co // g) * kh * kw / 1e9,
    }


def validate_problem(p, where="problem"):
    """Same rules as PyTorch; raises ValueError naming the field."""
    if not isinstance(p, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for f in REQUIRED_FIELDS:
        if f not in p:
            raise ValueError(f"{where}: missing field {f!r}")
    if not isinstance(p["name"], str) or not p["name"] or "," in p["name"]:
        raise ValueError(f"{where}: name must be a non-empty string without commas")
    for f in INT_FIELDS:
        if not isinstance(p[f], int) or isinstance(p[f], bool) or p[f] <= 0:
            raise ValueError(f"{where}: {f} must be a positive int, got {p[f]!r}")
    pairs = {f: as_pair(p[f], f) for f in PAIR_FIELDS}
    for f in ("kernel_size", "stride", "dilation"):
        if min(pairs[f]) <= 0:
            raise ValueError(f"{where}: {f} must be positive, got {p[f]!r}")
    for f in ("padding", "output_padding"):
        if min(pairs[f]) < 0:
            raise ValueError(f"{where}: {f} must be >= 0, got {p[f]!r}")
    for i in range(2):
        if pairs["output_padding"][i] >= max(pairs["stride"][i], pairs["dilation"][i]):
            raise ValueError(f"{where}: output_padding must be smaller than stride or dilation, got "
                             f"output_padding={p['output_padding']!r} stride={p['stride']!r} dilation={p['dilation']!r}")
    if p["in_channels"] % p["groups"] or p["out_channels"] % p["groups"]:
        raise ValueError(f"{where}: groups={p['groups']} must divide in_channels and out_channels")
    if not isinstance(p["bias"], bool):
        raise ValueError(f"{where}: bias must be true or false")
    if p["precision"] not in PRECISIONS:
        raise ValueError(f"{where}: precision must be one of {PRECISIONS}, got {p['precision']!r}")
    # Optional (the CLI's defaults when absent); checked before geometry(), which reads the element size.
    for f, allowed in (("dtype", tuple(DTYPE_BYTES)), ("layout", LAYOUTS)):
        if f in p and (not isinstance(p[f], str) or p[f] not in allowed):
            raise ValueError(f"{where}: {f} must be one of {allowed}, got {p[f]!r}")
    parse_epilogue(p["epilogue"])
    geo = geometry(p)
    if min(geo["y_shape"][2:]) <= 0:
        raise ValueError(f"{where}: output size {geo['y_shape'][2:]} is not positive")
    return geo


def load_problems(path, only=None):
    problems, names = [], set()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            try:
                p = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: bad JSON: {e}") from None
            validate_problem(p, where)
            if p["name"] in names:
                raise ValueError(f"{where}: duplicate name {p['name']!r}")
            names.add(p["name"])
            problems.append(p)
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"--only: unknown problem(s) {unknown}; known: {sorted(names)}")
        problems = [p for p in problems if p["name"] in only]
    return problems


def describe(p, geo):
    def pv(f):
        a, b = as_pair(p[f], f)
        return str(a) if a == b else f"{a}x{b}"
    return (f"N={p['batch']} C_in={p['in_channels']} -> C_out={p['out_channels']}, "
            f"{p['height']}x{p['width']} -> {geo['y_shape'][2]}x{geo['y_shape'][3]}, k={pv('kernel_size')} "
            f"s={pv('stride')} p={pv('padding')} op={pv('output_padding')} d={pv('dilation')} g={p['groups']}"
            f"{' bias' if p['bias'] else ' no-bias'}, epilogue `{p['epilogue']}`, {dtype_of(p)} {layout_of(p)}")


def fmt_bytes(b):
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= k:
            return f"{b / k:.2f} {unit}"
    return f"{b} B"


# ----------------------------------------------------------------------------------------------------
# PyTorch side: the model, timing, baselines
# ----------------------------------------------------------------------------------------------------

def apply_op(x, name, args):
    import torch
    import torch.nn.functional as F
    if name == "mish":
        return F.mish(x)
    if name == "add":
        return x + args[0]
    if name == "mul":
        return x * args[0]
    if name == "hardtanh":
        return F.hardtanh(x, min_val=args[0], max_val=args[1])
    if name == "relu":
        return F.relu(x)
    if name == "leaky_relu":
        return F.leaky_relu(x, negative_slope=args[0])
    if name == "gelu":
        return F.gelu(x)  # exact (erf) form, PyTorch's default
    if name == "silu":
        return F.silu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "softplus":
        return F.softplus(x)  # beta 1, threshold 20: PyTorch's defaults
    if name == "clamp":
        return torch.clamp(x, min=args[0], max=args[1])
    raise ValueError(f"unknown epilogue op {name!r}")


def make_model(p):
    """The PyTorch equivalent of a problem: nn.ConvTranspose2d followed by the epilogue as torch ops."""
    import torch.nn as nn

    class ChainModel(nn.Module):
        def __init__(self):
            super().__init__()
            # Named like the seed Model's attribute so state dicts move between them.
            self.conv_transpose = nn.ConvTranspose2d(
                p["in_channels"], p["out_channels"], as_pair(p["kernel_size"], "kernel_size"),
                stride=as_pair(p["stride"], "stride"), padding=as_pair(p["padding"], "padding"),
                output_padding=as_pair(p["output_padding"], "output_padding"), groups=p["groups"],
                bias=p["bias"], dilation=as_pair(p["dilation"], "dilation"))
            self.chain = tuple(parse_epilogue(p["epilogue"]))

        def forward(self, x):
            x = self.conv_transpose(x)
            for name, args in self.chain:
                x = apply_op(x, name, args)
            return x

    return ChainModel()


def memory_format(p):
    import torch
    return torch.channels_last if layout_of(p) == "NHWC" else torch.contiguous_format


def torch_inputs(p):
    """The model and x of one problem on DEVICE in its dtype and memory format. The seed is fixed and x is
    drawn in float32, then rounded: every dtype and layout of one shape sees the same values, rounded."""
    import torch
    dtype, fmt = getattr(torch, dtype_of(p)), memory_format(p)
    torch.manual_seed(0)
    model = make_model(p).to(DEVICE, dtype).to(memory_format=fmt).eval()
    x = torch.rand(p["batch"], p["in_channels"], p["height"], p["width"], device=DEVICE)  # never all-zero
    return model, x.to(dtype=dtype, memory_format=fmt)


def reference64(model, x, nref):
    """float64 output on the first nref batch items, from the values the model and x hold (for a 16-bit
    dtype the rounded ones), so the error measures the computation, not the rounding of its inputs."""
    return copy.deepcopy(model).double()(x[:nref].double())


def modelnew_args(p):
    """(add_value, scale) when the seed's ModelNew computes this problem, else a reason string.

    ModelNew hard-codes conv (groups 1, dilation 1, with bias) -> mish -> + add_value -> hardtanh(-1, 1)
    -> * scale; add_value and scale are constructor arguments, so any constants in those two slots work.
    """
    chain = parse_epilogue(p["epilogue"])
    if dtype_of(p) != "float32":
        return f"n/a: ModelNew is float32-only (its fused kernel reads float*), dtype is {dtype_of(p)}"
    if p["groups"] != 1:
        return "n/a: groups != 1"
    if as_pair(p["dilation"], "dilation") != (1, 1):
        return "n/a: dilation != 1"
    if not p["bias"]:
        return "n/a: no bias"
    if (len(chain) != 4 or chain[0] != ("mish", ()) or chain[1][0] != "add"
            or chain[2] != ("hardtanh", (-1.0, 1.0)) or chain[3][0] != "mul"):
        return f"n/a: epilogue is not the seed chain ({SEED_CHAIN})"
    return (chain[1][1][0], chain[3][1][0])


class Timer:
    """CUDA-event timing: warm-up, then `reps` timed runs, each preceded by an L2 flush.

    The flush writes a buffer larger than L2 (H100: 50 MiB) before every timed run, outside the
    events, so no run profits from the previous run's inputs or weights still sitting in L2.
    (On "cpu", only for the self-test, wall-clock time stands in for the events.)
    """

    def __init__(self, reps, warmup, flush_mib):
        import torch
        self.reps, self.warmup = reps, warmup
        self.flush = (torch.empty(flush_mib * 2**20 // 4, dtype=torch.float32, device=DEVICE)
                      if flush_mib > 0 else None)

    def __call__(self, fn, flush=True):
        import torch
        for _ in range(self.warmup):
            fn()
        sync()
        ts = []
        if DEVICE == "cuda":
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(self.reps)]
            for start, end in events:
                if flush and self.flush is not None:
                    self.flush.zero_()
                start.record()
                fn()
                end.record()
            sync()
            ts = [s.elapsed_time(e) for s, e in events]
        else:
            for _ in range(self.reps):
                if flush and self.flush is not None:
                    self.flush.zero_()
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
        return {"median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts), "runs": len(ts)}


def measure_copy_bandwidth(timer, nbytes=2**31):
    """2 GiB device-to-device copy, counted as read + write (as baseline_torch.py does)."""
    import torch
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=DEVICE).uniform_()
    dst = torch.empty_like(src)
    t = timer(lambda: dst.copy_(src), flush=False)  # 2 GiB dwarfs L2; no flush needed
    nbytes = 2 * src.numel() * 4
    del src, dst
    free_cache()
    return {"copy_bytes": nbytes, "copy_ms": t["median_ms"], "copy_TBps": nbytes / (t["median_ms"] * 1e-3) / 1e12,
            "copy_timing": t}


class SeedModelNew:
    """Imports seed_modelnew.py from --reference-dir once; it JIT-builds its CUDA extension on import."""

    def __init__(self, ref_dir):
        self.ref_dir, self.module, self.error, self.build_s = ref_dir, None, None, None
        self.tried = False

    def get(self):
        if not self.tried:
            self.tried = True
            path = os.path.join(self.ref_dir, "seed_modelnew.py")
            if not os.path.isfile(path):
                self.error = f"no seed_modelnew.py under {self.ref_dir} (pass --reference-dir)"
            else:
                import importlib.util
                t0 = time.time()
                try:
                    spec = importlib.util.spec_from_file_location("seed_modelnew", path)
                    mod = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(mod)
                    self.module, self.build_s = mod, time.time() - t0
                    log(f"  seed ModelNew built in {self.build_s:.1f} s")
                except Exception as e:  # noqa: BLE001 - a failed build is a result, not a crash
                    self.error = f"import/build failed: {e!r}"[:1000]
                    log(f"  seed ModelNew {self.error}")
        return self.module


def _guarded(res, key, fn):
    """Run one baseline measurement; record an exception (OOM, compile failure, ...) instead of dying."""
    import torch
    try:
        res[key] = fn()
    except Exception as e:  # noqa: BLE001
        res[key] = {"error": f"{type(e).__name__}: {e}"[:1500]}
        log(f"  {key}: FAILED {res[key]['error'][:300]}")
        sync()
    else:
        r = res[key]
        if "median_ms" in r:
            log(f"  {key}: {r['median_ms']:.3f} ms (min {r['min_ms']:.3f}, max {r['max_ms']:.3f})"
                f"  max|err| vs fp64 {r.get('max_abs_err', float('nan')):.2e}")
        else:
            log(f"  {key}: {r}")


def bench_torch(p, args, timer, seed_mn, skip):
    """All PyTorch baselines for one problem. Returns a dict of results; frees its GPU memory."""
    import torch
    res = {}
    cudnn = torch.backends.cudnn
    tf32_before = cudnn.allow_tf32
    model, x = torch_inputs(p)
    nref = min(2, p["batch"])
    try:
        with torch.no_grad():
            # float64 reference on the first batch items (cuDNN has no TF32 path for doubles).
            y64 = reference64(model, x, nref)

            def err(y):
                return (y[:nref].double() - y64).abs().max().item()

            def eager(tf32):
                cudnn.allow_tf32 = tf32
                y = model(x)
                e = err(y)
                del y
                r = timer(lambda: model(x))
                r["max_abs_err"], r["cudnn_allow_tf32"] = e, tf32
                return r

            if "eager" not in skip:
                _guarded(res, "eager_tf32", lambda: eager(True))
                if dtype_of(p) == "float32":
                    _guarded(res, "eager_fp32", lambda: eager(False))
                else:  # the same run again: cuDNN's TF32 switch only changes float32 convolutions
                    res["eager_fp32"] = {"na": f"n/a: cuDNN's TF32 switch does not apply to {dtype_of(p)}"}
            cudnn.allow_tf32 = True  # torch.compile and ModelNew run with PyTorch's default

            if "compile" not in skip:
                def compiled():
                    try:
                        t0 = time.time()
                        mc = torch.compile(model, mode="default")
                        y = mc(x)
                        sync()
                        compile_s = time.time() - t0
                        e = err(y)
                        del y
                        r = timer(lambda: mc(x))
                        r["max_abs_err"], r["compile_s"], r["mode"] = e, compile_s, "default"
                        return r
                    finally:
                        dynamo = getattr(torch, "_dynamo", None)
                        if dynamo is not None:
                            dynamo.reset()  # no guards or cached graphs leak into the next problem
                _guarded(res, "torch_compile", compiled)

            if "modelnew" not in skip:
                mn_args = modelnew_args(p)
                if isinstance(mn_args, str):
                    res["seed_modelnew"] = {"na": mn_args}
                else:
                    mod = seed_mn.get()
                    if mod is None:
                        res["seed_modelnew"] = {"error": seed_mn.error}
                    else:
                        def modelnew():
                            mn = mod.ModelNew(p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"],
                                              p["padding"], p["output_padding"], *mn_args).to(DEVICE).eval()
                            mn.to(memory_format=memory_format(p))  # as the model: weights laid out like x
                            mn.conv_transpose.load_state_dict(model.conv_transpose.state_dict())
                            y = mn(x)
                            e = err(y)
                            del y
                            r = timer(lambda: mn(x))
                            r["max_abs_err"], r["add_value"], r["scale"] = e, mn_args[0], mn_args[1]
                            r["build_s"] = seed_mn.build_s
                            return r
                        _guarded(res, "seed_modelnew", modelnew)
    finally:
        cudnn.allow_tf32 = tf32_before
        del model, x
        y64 = None
        free_cache()
    return res


# ----------------------------------------------------------------------------------------------------
# deconvtune side: subprocess calls to the command-line tool
# ----------------------------------------------------------------------------------------------------

def problem_json(p, precision):
    # dtype and layout spelled out where the line leaves them to the default: bench.json's argv says what ran.
    d = dict(p, precision=precision, dtype=dtype_of(p), layout=layout_of(p))
    return json.dumps(d, separators=(",", ":"))


def tail(text, n=2000):
    text = text or ""
    return text[-n:]


def list_configs(binary, configs_cmd, pjson, precision, timeout):
    """Config names from `configs_cmd` (deconvtune's JSON, else one per line, name first); [] means 'run the default kernel'."""
    info = {}
    if not configs_cmd or configs_cmd.strip().lower() == "none":
        info["skipped"] = "configs listing disabled"
        return [], info
    # Split the template first, then substitute, so the JSON (spaces, quotes) stays one argument.
    argv = [tok.replace("{bin}", binary).replace("{problem}", pjson).replace("{precision}", precision)
            for tok in shlex.split(configs_cmd)]
    info["argv"] = argv
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        info["error"] = f"{type(e).__name__}: {e}"[:1000]
        return [], info
    info["rc"] = cp.returncode
    if cp.returncode != 0:
        info["error"] = f"exit {cp.returncode}"
        info["stderr_tail"] = tail(cp.stderr)
        return [], info
    names = []
    try:  # `deconvtune inspect --list-configs --json`: {"configs": [{"name": ...}, ...]}
        doc = json.loads(cp.stdout)
        lines = [c["name"] for c in doc["configs"]] if isinstance(doc, dict) else []
    except (json.JSONDecodeError, KeyError, TypeError):
        lines = cp.stdout.splitlines()  # another tool's listing: one config name first on each line
    for line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        name = s.split()[0]
        if name not in names:
            names.append(name)
    if not names:
        info["error"] = "listed no configs"
        info["stderr_tail"] = tail(cp.stderr)
    return names, info


def parse_tool_json(stdout):
    """`deconvtune run --json` prints one JSON document, {"device": ..., "results": [...]}, and nothing
    else on stdout; returns (its first result with the device, None) or (None, why)."""
    try:
        doc = json.loads(stdout or "")
    except json.JSONDecodeError:
        return None, "stdout is not one JSON document"
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return None, "the JSON document has no results"
    obj = dict(results[0], device=doc.get("device"), problem_key=doc.get("problem_key"))
    if not isinstance(obj.get("median_ms"), (int, float)) or isinstance(obj.get("median_ms"), bool):
        # Without a GPU the tool still exits 0 with a document (compiled, not timed) that says why.
        return None, f"no GPU: {doc['no_gpu']}" if doc.get("no_gpu") else "JSON has no numeric median_ms"
    return obj, None


def run_tool(binary, pjson, precision, config, reps, timeout):
    """One `deconvtune run`; always returns a record, never raises."""
    argv = [binary, "run", "--problem", pjson, "--json"]
    if config:
        argv += ["--config", config]
    argv += ["--reps", str(reps)]
    rec = {"precision": precision, "config_requested": config, "argv": argv}
    t0 = time.time()
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        rec.update(ok=False, error=f"{type(e).__name__}: {e}"[:1000], wall_s=time.time() - t0)
        if isinstance(e, subprocess.TimeoutExpired):
            rec["stderr_tail"] = tail(e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr)
        return rec
    rec["wall_s"], rec["rc"] = time.time() - t0, cp.returncode
    obj, why = parse_tool_json(cp.stdout)
    if cp.returncode != 0 or obj is None:
        rec.update(ok=False, error=(f"exit {cp.returncode}" if cp.returncode != 0 else why),
                   stderr_tail=tail(cp.stderr), stdout_tail=tail(cp.stdout, 1000))
        if obj is not None:
            rec["result"] = obj
        return rec
    rec.update(ok=True, result=obj, verified=obj.get("verified") is True)
    if cp.stderr:
        rec["stderr_tail"] = tail(cp.stderr, 500)
    return rec


def run_label(rec):
    r = rec.get("result") or {}
    return r.get("config") or rec.get("config_requested") or "(default)"


def best_runs(runs):
    """Fastest verified run per precision (unverified or failed runs never count)."""
    best = {}
    for rec in runs:
        if rec.get("ok") and rec.get("verified"):
            prec = rec["precision"]
            if prec not in best or rec["result"]["median_ms"] < best[prec]["result"]["median_ms"]:
                best[prec] = rec
    return {prec: {"config": run_label(rec), **{k: rec["result"].get(k) for k in
                   ("median_ms", "min_ms", "max_ms", "runs", "max_abs_err", "error_bound", "device")}}
            for prec, rec in best.items()}


def bench_tool(p, args, save, out=None):
    """Every listed config in every precision; fills `out` as it goes so each save() keeps partial results."""
    out = {} if out is None else out
    out.update(runs=[], configs={}, best={})
    for precision in args.precisions:
        pjson = problem_json(p, precision)
        names, info = list_configs(args.deconvtune, args.configs_cmd, pjson, precision, args.tool_timeout)
        if args.max_configs and len(names) > args.max_configs:
            info["truncated_from"] = len(names)
            names = names[:args.max_configs]
        out["configs"][precision] = {"names": names, **info}
        if not names:
            log(f"  deconvtune {precision}: no config list ({info.get('error') or info.get('skipped')}); "
                f"running the default kernel")
        for config in names or [None]:
            rec = run_tool(args.deconvtune, pjson, precision, config, args.reps, args.tool_timeout)
            out["runs"].append(rec)
            if rec["ok"]:
                r = rec["result"]
                log(f"  deconvtune {precision} {run_label(rec)}: {r['median_ms']:.3f} ms  "
                    f"max|err| {f_err(r.get('max_abs_err'))} (bound {f_err(r.get('error_bound'))})  "
                    f"{'verified' if rec['verified'] else 'NOT VERIFIED'}")
            else:
                last = (rec.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
                log(f"  deconvtune {precision} {run_label(rec)}: FAILED ({rec['error']}) {last[0][:200]}")
            out["best"] = best_runs(out["runs"])
            save()
    out["best"] = best_runs(out["runs"])
    return out


# ----------------------------------------------------------------------------------------------------
# Report: bench.md from the bench.json document
# ----------------------------------------------------------------------------------------------------

def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def f_ms(v):
    if not _num(v):
        return "n/a" if v is None else str(v)
    return f"{v:.3f}" if v < 10 else f"{v:.2f}"


def f_ratio(num, den):
    if not (_num(num) and _num(den)) or den <= 0:
        return "–"
    return f"{num / den:.2f}x"


def f_err(v):
    if not _num(v):
        return "–" if v is None else str(v)
    return f"{v:.1e}"  # nan and inf print as such


def _ms(entry):
    return entry.get("median_ms") if isinstance(entry, dict) else None


def render_problem(pr):
    p, geo, base, tool = pr["problem"], pr["geometry"], pr.get("baselines", {}), pr.get("deconvtune", {})
    floor = pr.get("floor_ms")
    eager = _ms(base.get("eager_tf32"))
    comp = _ms(base.get("torch_compile"))
    seed = _ms(base.get("seed_modelnew"))
    best = tool.get("best", {})
    lines = [f"### {p['name']}", "",
             describe(p, geo) + ".  ",
             f"x {fmt_bytes(geo['x_bytes'])}, y {fmt_bytes(geo['y_bytes'])}, W {fmt_bytes(geo['w_bytes'])}; "
             f"≈{geo['gmac']:.1f} G multiply-adds.", "",
             "| what | ms | x floor | vs eager | vs torch.compile | vs seed ModelNew | max \\|err\\| vs fp64 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    notes = []

    def row(label, entry, err_text=None):
        if isinstance(entry, dict) and "median_ms" in entry:
            ms = entry["median_ms"]
            err = err_text if err_text is not None else f_err(entry.get("max_abs_err"))
            lines.append(f"| {label} | {f_ms(ms)} | {f_ratio(ms, floor)} | {f_ratio(eager, ms)} | "
                         f"{f_ratio(comp, ms)} | {f_ratio(seed, ms)} | {err} |")
        else:
            entry = entry if isinstance(entry, dict) else {}
            if "na" in entry:
                cell, why = "n/a", entry["na"]
            elif "error" in entry:
                cell, why = "failed", f"failed: {entry['error']}"
            else:
                cell, why = "–", "not run"
            lines.append(f"| {label} | {cell} | | | | | |")
            notes.append(f"{label}: {why}".replace("\n", " ")[:400])

    row("memory floor (x + y + W at copy BW)", {"median_ms": floor} if floor else None, "–")
    # For 16-bit dtypes "eager_tf32" is the one eager run (PyTorch's defaults); TF32 is a float32 matter.
    row("PyTorch eager, cuDNN TF32" if dtype_of(p) == "float32" else f"PyTorch eager, {dtype_of(p)}",
        base.get("eager_tf32"))
    row("PyTorch eager, TF32 off (fp32)", base.get("eager_fp32"))
    row("torch.compile (default)", base.get("torch_compile"))
    row("seed ModelNew", base.get("seed_modelnew"))
    for prec in ("tf32", "fp32"):
        b = best.get(prec)
        if b:
            bound = b.get("error_bound")
            err = f_err(b.get("max_abs_err")) + (f" (bound {f_err(bound)})" if bound is not None else "")
            row(f"best deconvtune {prec}: `{b['config']}`", b, err)
        else:
            ran = [r for r in tool.get("runs", []) if r.get("precision") == prec]
            entry = {"error": f"no verified result among {len(ran)} run(s)"} if ran else None
            row(f"best deconvtune {prec}", entry)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]

    runs = tool.get("runs", [])
    if runs:
        lines += ["", "<details><summary>all deconvtune runs</summary>", "",
                  "| precision | config | median ms | min | max | max \\|err\\| | bound | status |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for rec in runs:
            r = rec.get("result") or {}
            if rec.get("ok"):
                status = "verified" if rec.get("verified") else "NOT verified"
            else:
                last = (rec.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
                status = f"FAILED ({rec.get('error')}) {last[0]}".strip()[:160].replace("|", "\\|")
            lines.append(f"| {rec['precision']} | `{run_label(rec)}` | {f_ms(r.get('median_ms'))} | "
                         f"{f_ms(r.get('min_ms'))} | {f_ms(r.get('max_ms'))} | {f_err(r.get('max_abs_err'))} | "
                         f"{f_err(r.get('error_bound'))} | {status} |")
        lines += ["", "</details>"]
    return "\n".join(lines)


def render_md(doc):
    m = doc.get("meta", {})
    probs = doc.get("problems", [])
    label = f" ({m['device_label']})" if m.get("device_label") else ""
    bw = m.get("copy_TBps")
    hdr = [
        "# deconvtune vs PyTorch: ConvTranspose2d + elementwise epilogue", "",
        f"- date (UTC): {m.get('date_utc', '?')}",
        f"- device: {m.get('device', '?')}{label}",
        f"- torch {m.get('torch', '?')}, cuDNN {m.get('cudnn', '?')}, CUDA {m.get('cuda', '?')}, "
        f"Python {m.get('python', '?')}",
        f"- copy bandwidth: {bw:.2f} TB/s ({fmt_bytes(m.get('copy_bytes', 2**32) // 2)} device-to-device copy, "
        f"read + write)" if bw else
        "- copy bandwidth: n/a",
        f"- deconvtune: `{m.get('deconvtune_bin')}` {m.get('deconvtune_version') or ''}".rstrip(),
        f"- timing: CUDA events, warm-up {m.get('warmup', '?')}, median of {m.get('reps', '?')} runs, "
        f"L2 flushed ({m.get('flush_mib', '?')} MiB write) before each timed PyTorch run outside the timed "
        f"region; deconvtune times are the tool's own (`deconvtune run --reps {m.get('reps', '?')}`).",
        "- speedup columns: that baseline's ms / this row's ms (above 1 = this row is faster); "
        "x floor: this row's ms / memory floor; eager: PyTorch's defaults (cuDNN TF32 on for float32).",
        "- dtype, layout: x, W, bias and y in that type (the floor counts its bytes), x, y and the model in "
        "that memory format (NHWC = channels_last) for every row; deconvtune accumulates in fp32 for every dtype.",
        "- max |err|: PyTorch rows vs a float64 PyTorch run on the first 2 batch items (inputs torch.rand, "
        "rounded to the dtype: the float64 run takes the same rounded x, W and bias); "
        "deconvtune rows as the tool reports them, against its own bound; only verified runs count as best.",
    ]
    if m.get("sources"):
        hdr.append(f"- merged from: {', '.join(m['sources'])}")
    summary = ["## Summary", "",
               "| problem | dtype, layout | floor ms | eager ms | torch.compile ms | best tf32 ms | tf32 vs compile | "
               "best fp32 ms | fp32 vs compile |",
               "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for pr in probs:
        base, best = pr.get("baselines", {}), pr.get("deconvtune", {}).get("best", {})
        comp = _ms(base.get("torch_compile"))
        t, f = _ms(best.get("tf32")), _ms(best.get("fp32"))
        summary.append(f"| {pr['problem']['name']} | {dtype_of(pr['problem'])}, {layout_of(pr['problem'])} | "
                       f"{f_ms(pr.get('floor_ms'))} | {f_ms(_ms(base.get('eager_tf32')))} | "
                       f"{f_ms(comp)} | {f_ms(t)} | {f_ratio(comp, t)} | {f_ms(f)} | {f_ratio(comp, f)} |")
    body = ["## Problems", ""] + [render_problem(pr) + "\n" for pr in probs]
    return "\n".join(hdr + [""] + summary + [""] + render_roofline(doc) + [""] + body).rstrip() + "\n"


def roofline(pr, precision, tensor_tflops):
    """Where the best verified run of `precision` stands against the two lower bounds on its time:
    moving x, y and W once at the copy bandwidth (the floor), and its TF32 products at the tensor
    cores' rate. None without a verified run or a floor."""
    best = pr.get("deconvtune", {}).get("best", {}).get(precision)
    ms, floor = _ms(best), pr.get("floor_ms")
    geo = pr.get("geometry") or {}
    if not ms or not floor or "gmac" not in geo:
        return None
    products = 1 if dtype_of(pr["problem"]) != "float32" else TF32_PRODUCTS[precision]
    tensor_ms = products * 2 * geo["gmac"] * 1e9 / (tensor_tflops * 1e12) * 1e3
    bytes_moved = geo["x_bytes"] + geo["y_bytes"] + geo["w_bytes"]
    return {"ms": ms, "gbps": bytes_moved / (ms * 1e-3) / 1e9, "copy_fraction": floor / ms,
            "tflops": products * 2 * geo["gmac"] * 1e9 / (ms * 1e-3) / 1e12,
            "tensor_fraction": tensor_ms / ms, "bound": "memory" if floor >= tensor_ms else "tensor",
            "over_bound": ms / max(floor, tensor_ms)}


def render_roofline(doc):
    m = doc.get("meta", {})
    rate = m.get("tensor_TFLOPS", WGMMA_TF32_TFLOPS)
    lines = ["## Roofline", "",
             f"Each problem's best verified deconvtune run against its two lower bounds: x, y and W moved "
             f"once at the copy bandwidth (the floor), and its TF32 products (1 per multiply-add under tf32 "
             f"and for 16-bit tensors, 3 under fp32) at {rate:.0f} TFLOP/s, the dense TF32 wgmma rate "
             f"measured on the H200. `bound` is the larger of the two; `x bound` this run's ms over it.", "",
             "| problem | dtype | precision | ms | GB/s | % of copy BW | TF32 TFLOP/s | % of wgmma rate | "
             "bound | x bound |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    rows = 0
    for pr in doc.get("problems", []):
        for precision in PRECISIONS:
            r = roofline(pr, precision, rate)
            if r is None:
                continue
            rows += 1
            lines.append(f"| {pr['problem']['name']} | {dtype_of(pr['problem'])} | {precision} | {f_ms(r['ms'])} | "
                         f"{r['gbps']:.0f} | {100 * r['copy_fraction']:.0f}% | {r['tflops']:.0f} | "
                         f"{100 * r['tensor_fraction']:.0f}% | {r['bound']} | {r['over_bound']:.2f}x |")
    return lines if rows else []


def write_outputs(doc, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, text in (("bench.json", json.dumps(doc, indent=1, allow_nan=True)), ("bench.md", render_md(doc))):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out_dir, name))  # a killed run never leaves a half-written file


# ----------------------------------------------------------------------------------------------------
# Main benchmark
# ----------------------------------------------------------------------------------------------------

def tool_version(binary):
    try:
        cp = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        return (cp.stdout.strip().splitlines() or [""])[0][:200] if cp.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_commit():
    try:
        cp = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            timeout=10)
        if cp.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return cp.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def run_benchmark(args):
    problems = load_problems(args.problems, args.only)  # bad specs fail before any GPU work
    if "deconvtune" not in args.skip and not (os.path.isfile(args.deconvtune) and os.access(args.deconvtune, os.X_OK)):
        sys.exit(f"run_bench: --deconvtune {args.deconvtune!r} is not an executable file")
    import torch
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("run_bench: no CUDA device visible to PyTorch (use --selftest on a CPU machine)")
    # SIGTERM (a timeout) -> KeyboardInterrupt, so the finally below still writes what was measured.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    if DEVICE == "cuda":
        props = torch.cuda.get_device_properties(0)
        dev_name, sms = props.name, props.multi_processor_count
    else:
        dev_name, sms = f"CPU ({platform.processor() or platform.machine()})", None
    doc = {"meta": {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "device": dev_name, "device_label": args.device_label, "sm_count": sms,
        "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "cuda": torch.version.cuda,
        "python": platform.python_version(), "reps": args.reps, "warmup": args.warmup,
        "flush_mib": args.flush_mib, "deconvtune_bin": os.path.abspath(args.deconvtune) if args.deconvtune else None,
        "deconvtune_version": tool_version(args.deconvtune) if args.deconvtune else None,
        "git_commit": git_commit(), "argv": sys.argv, "skip": sorted(args.skip),
        "precisions": args.precisions, "configs_cmd": args.configs_cmd,
    }, "problems": []}
    out_dir = args.out
    save = lambda: write_outputs(doc, out_dir)
    log(f"device {dev_name}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; "
        f"{len(problems)} problem(s); out {out_dir}")

    timer = Timer(args.reps, args.warmup, args.flush_mib)
    seed_mn = SeedModelNew(args.reference_dir)
    try:
        bw = measure_copy_bandwidth(timer, args.copy_bytes)
        doc["meta"].update(bw)
        log(f"copy {fmt_bytes(bw['copy_bytes'] // 2)}: {bw['copy_ms']:.3f} ms -> {bw['copy_TBps']:.2f} TB/s "
            f"(read + write)")
        save()
        for p in problems:
            geo = geometry(p)
            pr = {"problem": p, "geometry": geo,
                  "floor_ms": (geo["x_bytes"] + geo["y_bytes"] + geo["w_bytes"]) / (bw["copy_TBps"] * 1e12) * 1e3}
            doc["problems"].append(pr)
            log(f"\n== {p['name']}: {describe(p, geo)}; floor {pr['floor_ms']:.3f} ms")
            t0 = time.time()
            pr["baselines"] = bench_torch(p, args, timer, seed_mn, args.skip)
            save()
            if "deconvtune" not in args.skip:
                # The PyTorch side has released its memory (empty_cache) before the tool runs.
                pr["deconvtune"] = {}
                bench_tool(p, args, save, pr["deconvtune"])
            pr["wall_s"] = time.time() - t0
            save()
    except KeyboardInterrupt:
        doc["meta"]["interrupted"] = True
        log("interrupted; writing what was measured")
    finally:
        save()
    if not args.no_print:
        log("\n" + render_md(doc))
    log(f"wrote {os.path.join(out_dir, 'bench.json')} and bench.md")


def render_only(args):
    """Merge bench.json files (later files win on problem name) and write bench.json + bench.md."""
    doc, order = None, []
    by_name = {}
    for path in args.render:
        with open(path) as f:
            d = json.load(f)
        if doc is None:
            doc = {"meta": dict(d.get("meta", {})), "problems": []}
        for pr in d.get("problems", []):
            name = pr["problem"]["name"]
            if name not in by_name:
                order.append(name)
            by_name[name] = pr
    if len(args.render) > 1:
        doc["meta"]["sources"] = list(args.render)
    doc["problems"] = [by_name[n] for n in order]
    write_outputs(doc, args.out)
    if not getattr(args, "no_print", False):
        print(render_md(doc))
    log(f"wrote {os.path.join(args.out, 'bench.json')} and bench.md")


# ----------------------------------------------------------------------------------------------------
# Self-test (CPU only, no GPU, no deconvtune build needed)
# ----------------------------------------------------------------------------------------------------

# The fake keeps the real CLI's --json contract (tools/: Output): stdout holds one JSON document and
# nothing else, the human text goes to stderr; `run` prints {"device", "problem_key", ..., "results": [...]},
# `inspect --list-configs` prints {"configs": [{"name", ...}, ...]}.
FAKE_TOOL = r'''
import json, sys
a = sys.argv[1:]
def opt(k):
    return a[a.index(k) + 1] if k in a else None
prob = json.loads(opt("--problem"))
prec = opt("--precision") or prob["precision"]
if a[0] == "inspect":
    if prob["name"] == "odd_sizes":
        sys.exit("inspect: simulated failure")
    print(json.dumps({"configs": [{"name": c, "family": c.split("_")[0], "math": prec} for c in
                                  ("direct_%s_a" % prec, "igemm_%s_b" % prec, "broken_%s" % prec, "chatty_%s" % prec)]}))
    sys.exit(0)
cfg = opt("--config") or "default_%s" % prob["precision"]
sys.stderr.write("problem   %s\ncompiling...\n" % prob["name"])
if cfg.startswith("broken"):
    sys.stderr.write("NVRTC error: simulated\nlaunch failed: too many resources requested\n")
    sys.exit(3)
ms = {"direct": 1.5, "igemm": 0.9, "default": 2.0, "chatty": 1.0}[cfg.split("_")[0]] * (0.5 if prob["precision"] == "tf32" else 1)
bound = 1e-3 if prob["precision"] == "tf32" else 2e-6
result = {"config": cfg, "median_ms": ms, "min_ms": ms * 0.98, "max_ms": ms * 1.05, "runs": int(opt("--reps")),
          "max_abs_err": bound / 3, "error_bound": bound, "status": "verified",
          "verified": not cfg.startswith("igemm_fp32")}
if cfg.startswith("chatty"):
    print("verifying...")  # human text on stdout before the document: breaks the contract
print(json.dumps({"device": "Fake GPU", "label": prob["name"], "name": prob["name"], "problem_key": "k",
                  "problem": prob, "results": [result]}))
'''


FAKE_MODELNEW = r'''
import torch, torch.nn as nn, torch.nn.functional as F
class ModelNew(nn.Module):  # same maths as the seed's ModelNew, without the CUDA build
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, add_value, scale):
        super().__init__()
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding)
        self.add_value, self.scale = add_value, scale
    def forward(self, x):
        return F.hardtanh(F.mish(self.conv_transpose(x)) + self.add_value, -1, 1) * self.scale
'''


def selftest(args):
    import torch
    global DEVICE
    ok = True

    def check(cond, what):
        nonlocal ok
        log(f"  [{'ok' if cond else 'FAIL'}] {what}")
        ok &= bool(cond)

    log(f"selftest: torch {torch.__version__} on CPU, problems {args.problems}")
    problems = load_problems(args.problems)
    log(f"\n1. problems ({len(problems)} loaded and valid)")
    for p in problems:
        geo = geometry(p)
        total = geo["x_bytes"] + geo["y_bytes"] + geo["w_bytes"]
        mn = modelnew_args(p)
        log(f"  {p['name']:<13} x{geo['x_shape']} W{geo['w_shape']} -> y{geo['y_shape']}  "
            f"{fmt_bytes(total):>10}  {geo['gmac']:6.1f} GMAC  ModelNew: {mn if isinstance(mn, str) else 'add=%g scale=%g' % mn}")
        check(total <= TENSOR_BUDGET_BYTES, f"{p['name']}: x+y+W {fmt_bytes(total)} <= 3 GiB")
    check(problems[0]["name"] == "seed" and problems[0]["epilogue"] == SEED_CHAIN, "first problem is the seed")
    check(len(problems) >= 6, "seed + at least 5 others")
    problems16 = load_problems(os.path.join(HERE, "problems_16bit.jsonl"))
    # Each line of problems_16bit.jsonl is a problems.jsonl line under a suffixed name with dtype and layout set.
    variants = {"bf16": ("bfloat16", "NCHW"), "fp16": ("float16", "NCHW"), "nhwc": ("float32", "NHWC")}
    by_name = {p["name"]: p for p in problems}
    made = []
    for p in problems16:
        stem, _, suffix = p["name"].rpartition("_")
        dtype, layout = variants.get(suffix, (None, None))
        made.append(stem if stem in by_name and p == dict(by_name[stem], name=p["name"], dtype=dtype,
                                                          layout=layout) else None)
    check(None not in made, f"problems_16bit.jsonl: {len(problems16)} variants of problems.jsonl lines")
    check(all(made.count(stem) == 3 for stem in made) and "seed" in made and len(set(made)) >= 4,
          f"the seed and >= 3 others, each in bf16, fp16 and NHWC ({sorted(set(made), key=made.index)})")

    log("\n2. validation rejects bad specs, naming the field")
    base = dict(problems[0])
    for field, value, expect in (("output_padding", 2, "output_padding"), ("groups", 3, "groups"),
                                 ("epilogue", "mish,foo", "unknown op"), ("epilogue", "add", "takes 1"),
                                 ("epilogue", "hardtanh:1:-1", "lo <= hi"), ("kernel_size", [3], "kernel_size"),
                                 ("batch", 0, "batch"), ("precision", "fp16", "precision")):
        bad = dict(base, **{field: value})
        try:
            validate_problem(bad)
            check(False, f"{field}={value!r} rejected")
        except ValueError as e:
            check(expect in str(e), f"{field}={value!r} rejected: {e}")
    check(parse_epilogue("leaky_relu") == [("leaky_relu", (0.01,))], "bare leaky_relu gets PyTorch's 0.01")
    check(parse_epilogue(SEED_CHAIN) == [("mish", ()), ("add", (0.5,)), ("hardtanh", (-1.0, 1.0)), ("mul", (2.0,))],
          "seed chain parses")

    log("\n2b. dtype and layout: validation, bytes, ModelNew, torch inputs and their float64 reference")
    for field, value in (("dtype", "half"), ("dtype", 16), ("dtype", "Float32"), ("layout", "NHCW"),
                         ("layout", "channels_last"), ("layout", ["NHWC"])):
        try:
            validate_problem(dict(base, **{field: value}))
            check(False, f"{field}={value!r} rejected")
        except ValueError as e:
            check(f"{field} must be one of" in str(e), f"{field}={value!r} rejected: {e}")
    v16 = {p["name"]: p for p in problems16}
    g32, g16, gcl = geometry(base), geometry(v16["seed_bf16"]), geometry(v16["seed_nhwc"])
    check(all(g16[k] * 2 == g32[k] == gcl[k] for k in ("x_bytes", "y_bytes", "w_bytes")),
          "bytes of x, y and W: half in bf16, the same in NHWC float32")
    check(validate_problem(dict(base, dtype="float16"))["x_bytes"] * 2 == g32["x_bytes"], "float16: 2 bytes too")
    for name in ("seed_bf16", "seed_fp16"):
        mn = modelnew_args(v16[name])
        check(isinstance(mn, str) and "float32-only" in mn, f"{name}: ModelNew {mn}")
    check(modelnew_args(v16["seed_nhwc"]) == modelnew_args(base), "seed_nhwc: ModelNew runs (float32)")
    DEVICE = "cpu"  # torch_inputs() places the tensors on DEVICE; the smoke run below sets it again
    tinyq = lambda p: dict(p, batch=2, height=5, width=4, in_channels=8, out_channels=8)
    with torch.no_grad():
        m32, x32 = torch_inputs(tinyq(base))
        for name, dtype, fmt in (("seed_bf16", torch.bfloat16, torch.contiguous_format),
                                 ("seed_fp16", torch.float16, torch.contiguous_format),
                                 ("seed_nhwc", torch.float32, torch.channels_last)):
            m, x = torch_inputs(tinyq(v16[name]))
            w = m.conv_transpose.weight
            check(x.dtype == w.dtype == m.conv_transpose.bias.dtype == dtype and x.is_contiguous(memory_format=fmt)
                  and w.is_contiguous(memory_format=fmt), f"{name}: x, W, bias in {dtype}, x and W {fmt}")
            # The reference takes the rounded values: the float32 model and x rounded by hand give it bit for bit.
            mr = copy.deepcopy(m32)
            mr.load_state_dict({k: t.to(dtype).float() for k, t in m32.state_dict().items()})
            want = reference64(mr, x32.to(dtype).float(), 2)
            got = reference64(m, x, 2)
            check(torch.equal(got, want) and (dtype == torch.float32 or not torch.equal(got, reference64(m32, x32, 2))),
                  f"{name}: float64 reference from the same rounded inputs")

    log("\n3. every op of the epilogue vocabulary against a hand-written formula (float64)")
    v = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    sp = torch.where(v > 20, v, torch.log1p(torch.exp(v)))
    manual = {
        "mish": v * torch.tanh(sp), "add:0.5": v + 0.5, "mul:2": v * 2, "hardtanh:-1:1": v.clamp(-1, 1),
        "relu": v.clamp(min=0), "leaky_relu:0.2": torch.where(v > 0, v, 0.2 * v),
        "gelu": 0.5 * v * (1 + torch.erf(v / math.sqrt(2))), "silu": v / (1 + torch.exp(-v)),
        "sigmoid": 1 / (1 + torch.exp(-v)), "tanh": torch.tanh(v), "softplus": sp, "clamp:-0.5:1.5": v.clamp(-0.5, 1.5),
    }
    check(set(k.split(":")[0] for k in manual) == set(EPILOGUE_OPS), "formulas cover every op")
    for text, want in manual.items():
        (name, a), = parse_epilogue(text)
        got = apply_op(v, name, a)
        check(torch.allclose(got, want, rtol=1e-12, atol=1e-12), f"{text}: max diff {(got - want).abs().max().item():.1e}")

    log("\n4. each problem's torch model on CPU (batch 2, spatial <= 7x6): output shape and fp32 vs fp64")
    for p in problems:
        q = dict(p, batch=2, height=min(p["height"], 7), width=min(p["width"], 6))
        geo = geometry(q)
        torch.manual_seed(0)
        m = make_model(q).eval()
        x = torch.rand(*geo["x_shape"])
        with torch.no_grad():
            y = m(x)
            y64 = copy.deepcopy(m).double()(x.double())
        err = (y.double() - y64).abs().max().item()
        check(list(y.shape) == geo["y_shape"] and torch.isfinite(y).all() and err < 1e-5,
              f"{p['name']}: y{list(y.shape)} (expected {geo['y_shape']}), fp32 vs fp64 {err:.1e}")

    seed_py = os.path.join(args.reference_dir, "seed_model.py")
    if os.path.isfile(seed_py):
        import importlib.util
        spec = importlib.util.spec_from_file_location("seed_model", seed_py)
        sm = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sm)
        q = dict(problems[0], batch=2, height=9, width=7)
        torch.manual_seed(0)
        ours = make_model(q).eval()
        theirs = sm.Model(q["in_channels"], q["out_channels"], q["kernel_size"], q["stride"], q["padding"],
                          q["output_padding"], *modelnew_args(q)).eval()
        theirs.load_state_dict(ours.state_dict())  # same attribute name: the state dicts match
        x = torch.rand(2, q["in_channels"], 9, 7)
        with torch.no_grad():
            d = (ours(x) - theirs(x)).abs().max().item()
        check(d == 0.0, f"seed chain model == reference seed_model.Model bit for bit (max diff {d})")
    else:
        log(f"  (skipped the seed_model.py comparison: none under {args.reference_dir})")

    log("\n5. deconvtune subprocess handling against a fake binary")
    with tempfile.TemporaryDirectory() as td:
        fake = os.path.join(td, "deconvtune")
        with open(fake, "w") as f:
            f.write(f"#!{sys.executable}\n" + FAKE_TOOL)
        os.chmod(fake, 0o755)
        targs = argparse.Namespace(deconvtune=fake, configs_cmd=DEFAULT_CONFIGS_CMD, precisions=list(PRECISIONS),
                                   max_configs=0, reps=7, tool_timeout=60)
        seed_tool = bench_tool(by_name["seed"], targs, lambda: None)
        odd_tool = bench_tool(by_name["odd_sizes"], targs, lambda: None)
        targs.max_configs = 2
        capped = bench_tool(by_name["seed"], targs, lambda: None)
        runs = seed_tool["runs"]
        check(len(runs) == 8, f"seed: 4 listed configs x 2 precisions run ({len(runs)})")
        check(sum(not r["ok"] for r in runs) == 4,
              "broken (exit 3) and chatty (text before the JSON document on stdout) recorded as failures")
        check(all(r["result"]["device"] == "Fake GPU" and r["result"]["problem_key"] == "k" and
                  r["result"]["config"] == r["config_requested"] for r in runs if r["ok"]),
              "a result carries its document's device and problem key")
        sent = [json.loads(r["argv"][r["argv"].index("--problem") + 1]) for r in runs]
        check(all(q == dict(by_name["seed"], precision=r["precision"], dtype="float32", layout="NCHW")
                  for q, r in zip(sent, runs)),
              "the tool gets the problem line as it stands, precision set per run, dtype and layout spelled out")
        # Verbatim from `deconvtune run --problem seed --json` on a machine without a GPU.
        no_gpu = ('{"device":null,"label":"n128 64->64 128x128 k3x3 s2x2 g1","name":"seed","no_gpu":"no CUDA '
                  'driver on this machine","problem_key":"convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:'
                  'd1x1:g1:bias:float32:NCHW:fp32|mish,add:0.5,hardtanh:-1:1,mul:2","results":[{"compile_ms":'
                  '1040.3,"config":"pgemm_3xtf32_bn64_rp4_cp32_wm4_wn4_st2_xs0_wg0_mishexact","error_bound":null,'
                  '"max_abs_err":null,"max_ms":null,"median_ms":null,"min_ms":null,"registers":128,"runs":0,'
                  '"shared_bytes":231936,"spill_bytes":0,"status":"compiled","verified":false}]}\n')
        obj, why = parse_tool_json(no_gpu)
        check(obj is None and why == "no GPU: no CUDA driver on this machine", f"the CLI's no-GPU document: {why}")
        timed = json.loads(no_gpu)
        timed["device"] = "NVIDIA H200"
        timed["results"][0].update(median_ms=0.5, min_ms=0.49, max_ms=0.52, runs=20, verified=True)
        obj, why = parse_tool_json(json.dumps(timed, indent=1))
        check(obj is not None and obj["median_ms"] == 0.5 and obj["device"] == timed["device"]
              and obj["problem_key"].endswith("|mish,add:0.5,hardtanh:-1:1,mul:2"),
              f"the CLI's document with times parses (pretty-printed too) ({why})")
        check(all("NVRTC error" in r.get("stderr_tail", "") for r in runs if r["config_requested"].startswith("broken")),
              "failure keeps the stderr tail")
        check(seed_tool["best"]["tf32"]["config"] == "igemm_tf32_b", "best tf32 = fastest verified")
        check(seed_tool["best"]["fp32"]["config"] == "direct_fp32_a", "unverified igemm_fp32_b never counts as best")
        check(all(r["result"]["runs"] == 7 for r in runs if r["ok"]), "--reps is passed through")
        check(len(odd_tool["runs"]) == 2 and all(r["config_requested"] is None and r["ok"] for r in odd_tool["runs"]),
              "inspect failure -> one default-kernel run per precision")
        check(len(capped["runs"]) == 4 and capped["configs"]["fp32"]["truncated_from"] == 4, "--max-configs 2 caps")
        nobin = run_tool(os.path.join(td, "missing"), "{}", "fp32", None, 3, 10)
        check(not nobin["ok"] and "FileNotFoundError" in nobin["error"], "missing binary recorded, no crash")

    log("\n6. the benchmark path end to end on the CPU (tiny problems, fake tool, fake ModelNew)")
    with tempfile.TemporaryDirectory() as td:
        fake, ref, out = os.path.join(td, "deconvtune"), os.path.join(td, "ref"), os.path.join(td, "out")
        with open(fake, "w") as f:
            f.write(f"#!{sys.executable}\n" + FAKE_TOOL)
        os.chmod(fake, 0o755)
        os.makedirs(ref)
        with open(os.path.join(ref, "seed_modelnew.py"), "w") as f:
            f.write(FAKE_MODELNEW)
        tiny = os.path.join(td, "tiny.jsonl")
        with open(tiny, "w") as f:
            for p in problems + problems16:
                if p["name"] in ("seed", "groups4", "asym_dilated", "seed_bf16", "seed_nhwc"):
                    f.write(json.dumps(dict(p, batch=2, height=min(p["height"], 8), width=min(p["width"], 6))) + "\n")
        rc = main(["--device", "cpu", "--copy-mib", "16", "--flush-mib", "1", "--reps", "3", "--warmup", "1",
                   "--deconvtune", fake, "--problems", tiny, "--out", out, "--reference-dir", ref,
                   "--max-configs", "2", "--device-label", "selftest smoke", "--no-print"])
        with open(os.path.join(out, "bench.json")) as f:
            smoke = json.load(f)
        check(rc == 0 and os.path.isfile(os.path.join(out, "bench.md")), "bench.json and bench.md written")
        names = [pr["problem"]["name"] for pr in smoke["problems"]]
        check(names == ["seed", "groups4", "asym_dilated", "seed_bf16", "seed_nhwc"],
              f"all tiny problems recorded ({names})")
        b = {pr["problem"]["name"]: pr["baselines"] for pr in smoke["problems"]}
        # PyTorch on the CPU has no 16-bit transposed convolution (1.13: slow_conv_transpose2d), so seed_bf16's
        # eager run may only record its failure here; the GPU runs it.
        e16 = b.pop("seed_bf16")
        names.remove("seed_bf16")
        check("median_ms" in e16["eager_tf32"] or "error" in e16["eager_tf32"],
              f"seed_bf16: eager timed or its failure recorded "
              f"({'ok' if 'median_ms' in e16['eager_tf32'] else e16['eager_tf32'].get('error', '')[:60]})")
        check("na" in e16["eager_fp32"] and "na" in e16["seed_modelnew"], "seed_bf16: no TF32-off run, ModelNew n/a")
        sent = {pr["problem"]["name"]: {(q["dtype"], q["layout"]) for q in
                                        (json.loads(r["argv"][r["argv"].index("--problem") + 1])
                                         for r in pr["deconvtune"]["runs"])} for pr in smoke["problems"]}
        check(sent["seed_bf16"] == {("bfloat16", "NCHW")} and sent["seed_nhwc"] == {("float32", "NHWC")}
              and sent["seed"] == {("float32", "NCHW")}, f"the tool gets each problem's dtype and layout ({sent})")
        check(all("median_ms" in b[n]["eager_tf32"] and "median_ms" in b[n]["eager_fp32"] for n in names),
              "eager TF32 and fp32 timed")
        check(all(b[n]["eager_fp32"]["max_abs_err"] < 1e-5 for n in names), "eager fp32 vs float64 error small")
        check("median_ms" in b["seed"]["seed_modelnew"] and b["seed"]["seed_modelnew"]["max_abs_err"] < 1e-5,
              "ModelNew (fake, from --reference-dir) timed and checked on the seed")
        check("median_ms" in b["seed_nhwc"]["seed_modelnew"] and b["seed_nhwc"]["seed_modelnew"]["max_abs_err"] < 1e-5,
              "ModelNew timed and checked on seed_nhwc (channels_last)")
        check("na" in b["groups4"]["seed_modelnew"] and "na" in b["asym_dilated"]["seed_modelnew"],
              "ModelNew n/a elsewhere")
        tc = b["seed"]["torch_compile"]
        check("median_ms" in tc or "error" in tc, f"torch.compile timed or its failure recorded "
              f"({'ok' if 'median_ms' in tc else tc.get('error', '')[:60]})")
        check(all(len(pr["deconvtune"]["runs"]) == 4 and pr["deconvtune"]["best"].get("tf32")
                  for pr in smoke["problems"]), "deconvtune: 2 configs x 2 precisions each, best tf32 found")
        render_only(argparse.Namespace(render=[os.path.join(out, "bench.json")] * 2, out=os.path.join(td, "re"),
                                       no_print=True))
        check(os.path.isfile(os.path.join(td, "re", "bench.md")), "--render re-renders (and merges) bench.json")
        with open(os.path.join(out, "bench.md")) as f:
            smoke_md = f.read()
        check("| seed_bf16 | bfloat16, NCHW |" in smoke_md and "| seed_nhwc | float32, NHWC |" in smoke_md
              and "| PyTorch eager, bfloat16 |" in smoke_md and "`, bfloat16 NCHW." in smoke_md,
              "bench.md shows each problem's dtype and layout")
    DEVICE = "cuda"

    log("\n7. tables from fake numbers")
    bw = 3.0
    doc = {"meta": {"date_utc": "2000-01-01 00:00:00", "device": "Fake GPU", "device_label": "selftest",
                    "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "cuda": None,
                    "python": platform.python_version(), "reps": 20, "warmup": 3, "flush_mib": 256,
                    "deconvtune_bin": "fake", "copy_TBps": bw}, "problems": []}
    for i, p in enumerate(problems):
        geo = geometry(p)
        floor = (geo["x_bytes"] + geo["y_bytes"] + geo["w_bytes"]) / (bw * 1e12) * 1e3
        t = lambda k, e: {"median_ms": floor * k, "min_ms": floor * k * 0.99, "max_ms": floor * k * 1.02,
                          "runs": 20, "max_abs_err": e}
        mn = modelnew_args(p)
        base = {"eager_tf32": t(12.3, 4.0e-4), "eager_fp32": t(24.5, 4.8e-7),
                "torch_compile": t(4.1, 3.9e-4) if i != 1 else {"error": "BackendCompilerFailed: simulated"},
                "seed_modelnew": {"na": mn} if isinstance(mn, str) else t(9.0, 4.0e-4)}
        tool = seed_tool if p["name"] == "seed" else (odd_tool if p["name"] == "odd_sizes" else {"runs": []})
        if p["name"] == "seed":  # put the fake tool times on the seed's scale
            tool = json.loads(json.dumps(tool))
            for r in tool["runs"]:
                for k in ("median_ms", "min_ms", "max_ms"):
                    if r.get("result"):
                        r["result"][k] *= floor
            tool["best"] = best_runs(tool["runs"])
        doc["problems"].append({"problem": p, "geometry": geo, "floor_ms": floor, "baselines": base,
                                "deconvtune": tool})
    doc = json.loads(json.dumps(doc))  # what --render would read back
    md = render_md(doc)
    check("| seed |" in md and "best deconvtune tf32: `igemm_tf32_b`" in md, "summary and best rows present")
    seed_doc = next(pr for pr in doc["problems"] if pr["problem"]["name"] == "seed")
    seed_best = _ms(seed_doc["deconvtune"]["best"].get("tf32"))
    r = roofline(seed_doc, "tf32", WGMMA_TF32_TFLOPS)
    # The seed: 77.3 G multiply-adds, one TF32 product each, at 485 TFLOP/s: 0.319 ms.
    check(r is not None and abs(r["copy_fraction"] - seed_doc["floor_ms"] / seed_best) < 1e-9
          and abs(r["tensor_fraction"] * seed_best - 2 * 77.309411328 / 485.0) < 1e-6
          and r["bound"] == ("memory" if seed_doc["floor_ms"] > 0.3188 else "tensor"),
          "roofline: fraction of the copy bandwidth and of the wgmma rate, and the bound")
    r3 = roofline(seed_doc, "fp32", WGMMA_TF32_TFLOPS)
    check(r3 is None or abs(r3["tflops"] / r3["tensor_fraction"] - 485.0) < 1e-6, "roofline: fp32 counts 3 products")
    check("## Roofline" in md and "| seed | float32 | tf32 |" in md, "roofline table present")
    log("\n" + md)
    if args.out_given:
        write_outputs(doc, args.out)
        log(f"wrote fake tables to {args.out}")
    log(f"selftest {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deconvtune", metavar="PATH", help="the deconvtune command-line binary")
    ap.add_argument("--problems", default=os.path.join(HERE, "problems.jsonl"), help="JSONL benchmark set")
    ap.add_argument("--only", default="", help="comma-separated problem names to run (default: all)")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per measurement (median/min/max); also the tool's --reps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs before PyTorch timings")
    ap.add_argument("--flush-mib", type=int, default=256, help="L2 flush buffer written before each timed run (0: off)")
    ap.add_argument("--out", default=None, help="output folder (default: $OUT if set, else bench/results/latest)")
    ap.add_argument("--device-label", default=None, help="free text for the report header (e.g. the machine)")
    ap.add_argument("--reference-dir", default=os.path.join(HERE, "reference"),
                    help="folder with seed_model.py / seed_modelnew.py (default: bench/reference)")
    ap.add_argument("--configs-cmd", default=DEFAULT_CONFIGS_CMD,
                    help="command listing the configs to run, one per line with the name first; placeholders "
                         "{bin} {problem} {precision}; 'none' runs only the default kernel "
                         f"(default: '{DEFAULT_CONFIGS_CMD}')")
    ap.add_argument("--max-configs", type=int, default=0, help="run at most N listed configs per precision (0: all)")
    ap.add_argument("--precisions", default="fp32,tf32", help="deconvtune precisions to run (default fp32,tf32)")
    ap.add_argument("--tool-timeout", type=int, default=300, help="seconds allowed per deconvtune subprocess")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: eager,compile,modelnew,deconvtune")
    # For the self-test's CPU smoke run only: run the benchmark path on the CPU, with a smaller copy.
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help=argparse.SUPPRESS)
    ap.add_argument("--copy-mib", type=int, default=2048, help=argparse.SUPPRESS)
    ap.add_argument("--no-print", action="store_true", help=argparse.SUPPRESS)  # skip echoing bench.md
    ap.add_argument("--selftest", action="store_true", help="CPU-only check of the CPU-side pieces; no GPU needed")
    ap.add_argument("--render", nargs="+", metavar="BENCH_JSON", help="only (re)write bench.md/bench.json from "
                    "earlier bench.json files, merged in order")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    args.copy_bytes = args.copy_mib * 2**20

    args.out_given = args.out is not None
    if args.out is None:
        args.out = os.environ.get("OUT") or os.path.join(HERE, "results", "latest")
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    bad = args.skip - {"eager", "compile", "modelnew", "deconvtune"}
    if bad:
        ap.error(f"--skip: unknown part(s) {sorted(bad)}")
    args.precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    if not args.precisions or set(args.precisions) - set(PRECISIONS):
        ap.error(f"--precisions: choose from {PRECISIONS}")
    if args.reps < 1 or args.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")

    if args.selftest:
        return selftest(args)
    if args.render:
        return render_only(args)
    if not args.deconvtune and "deconvtune" not in args.skip:
        ap.error("--deconvtune PATH is required (or --skip deconvtune)")
    try:
        run_benchmark(args)
    except ValueError as e:
        sys.exit(f"run_bench: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
