#!/usr/bin/env python3
"""The Python drop-in on the GPU: deconvtune.torch.ConvTranspose2dEpilogue against the user's Model.

For the seed shape (the user's own seed_model.Model and get_inputs()) and every problem of
bench/problems.jsonl (the same block as torch ops, bench/run_bench.py's make_model), in one process:
  - correctness: the module's output vs a float64 PyTorch run of the same weights and input, in fp32
    and tf32, within codegen/error_bound (fp32 2e-6, tf32 1e-3 on the seed shape, widened
    with sqrt(terms per output) and with the output's magnitude);
  - timings (CUDA events, median, L2 flushed before each run): PyTorch eager with cuDNN TF32 on and
    off, torch.compile (mode "default"), and the module called from Python (its per-call Python
    overhead is inside the events when the host is the bottleneck);
  - per-call host overhead on a tiny problem (back-to-back calls, wall clock): the module, the raw
    ctypes Plan.run, eager, and the compiled module.
Writes python_bench.md and python_bench.json to --out (default $OUT/api, else bench/results/latest-api).

    python3 bench/python_bench.py [--only seed,groups4] [--reps 10] [--skip-compile] [--out DIR]
Needs `pip install ./python` (or PYTHONPATH=python) and DECONVTUNE_LIBRARY_PATH (or the library on the
system path).
"""
import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (problem loading, the torch model of a problem, CUDA-event timer)


def error_bound(p, precision, max_abs_reference):
    """trial/verifier.cpp's error_bound (and check_output's widening for large outputs)."""
    base = 2e-6 if precision == "fp32" else 1e-3
    (kh, kw), (sh, sw) = run_bench.as_pair(p["kernel_size"], "k"), run_bench.as_pair(p["stride"], "s")
    taps = max(1.0, kh * kw / (sh * sw))
    terms = p["in_channels"] // p["groups"] * taps
    return base * max(1.0, math.sqrt(terms / (64 * 9 / 4))) * max(1.0, max_abs_reference / 2.0)


def module_for(p, model, precision):
    import deconvtune.torch as dtorch
    if p["name"] == "seed":
        return dtorch.ConvTranspose2dEpilogue.from_model(model, precision=precision)
    pair = lambda f: run_bench.as_pair(p[f], f)  # noqa: E731
    block = dtorch.ConvTranspose2dEpilogue(
        p["in_channels"], p["out_channels"], pair("kernel_size"), pair("stride"), pair("padding"),
        pair("output_padding"), groups=p["groups"], bias=p["bias"], dilation=pair("dilation"),
        epilogue=p["epilogue"], precision=precision, device="cuda")
    block.load_state_dict(model.state_dict())
    return block


def bench_problem(p, args, timer, seed_model):
    import torch
    torch.manual_seed(0)
    if p["name"] == "seed":  # the user's own Model, arguments and inputs
        model = seed_model.Model(*seed_model.get_init_inputs()).cuda()
        x = seed_model.get_inputs()[0].cuda()
    else:
        model = run_bench.make_model(p).cuda()
        x = torch.rand(p["batch"], p["in_channels"], p["height"], p["width"], device="cuda")
    result = {"name": p["name"], "shape": run_bench.describe(p, run_bench.geometry(p)), "rows": {}}
    # One compiled model serves both precisions: cuDNN reads allow_tf32 when the convolution runs.
    compiled, compile_error = None, None
    if not args.skip_compile:
        try:
            compiled = torch.compile(model)
        except Exception as e:  # recorded, not fatal: the other rows still mean something
            compile_error = f"{type(e).__name__}: {e}"[:300]
    with torch.no_grad():
        exact = model.double()(x.double())
        model.float()
        max_ref = exact.abs().max().item()
        for precision in ("fp32", "tf32"):
            block = module_for(p, model, precision)
            t0 = time.perf_counter()
            y = block(x)  # the first call plans (DB lookup or heuristic, cubin cache or NVRTC)
            torch.cuda.synchronize()
            first_call_ms = (time.perf_counter() - t0) * 1e3
            err = (y.double() - exact).abs().max().item()
            bound = error_bound(p, precision, max_ref)
            plan = block.plan(x)
            del y
            row = {"max_abs_err": err, "bound": bound, "ok": err <= bound, "config": plan.config,
                   "source": plan.source, "first_call_ms": first_call_ms,
                   "module": timer(lambda: block(x))}
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            row["eager"] = timer(lambda: model(x))
            ye = model(x)
            row["eager_max_abs_err"] = (ye.double() - exact).abs().max().item()
            del ye
            if compiled is not None and compile_error is None:
                try:
                    t0 = time.perf_counter()
                    compiled(x)  # the first call compiles (or recompiles)
                    torch.cuda.synchronize()
                    row["first_compiled_call_s"] = time.perf_counter() - t0
                    row["compiled"] = timer(lambda: compiled(x))
                except Exception as e:
                    compile_error = f"{type(e).__name__}: {e}"[:300]
            if compile_error:
                row["compiled_error"] = compile_error
            torch.backends.cudnn.allow_tf32 = True
            result["rows"][precision] = row
            run_bench.log(f"{p['name']:>14} {precision}: module {row['module']['median_ms']:.3f} ms "
                          f"({row['config']}, {row['source']}), eager {row['eager']['median_ms']:.3f} ms, "
                          f"compiled {row.get('compiled', {}).get('median_ms', float('nan')):.3f} ms, "
                          f"max|err| {err:.2e} <= {bound:.2e}: {'ok' if row['ok'] else 'FAILED'}")
        del exact
    run_bench.free_cache()
    return result


def host_overhead(args, seed_model):
    """Wall-clock microseconds per call, back to back, on a problem small enough that the GPU is idle."""
    import torch
    import deconvtune.torch as dtorch
    init = [16, 16, 3, 2, 1, 1, 0.5, 2.0]
    model = seed_model.Model(*init).cuda()
    block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="tf32")
    x = torch.rand(1, 16, 16, 16, device="cuda")
    y = torch.empty(1, 16, 32, 32, device="cuda")
    block(x)
    plan = block.plan(x)
    w, b = block.conv_transpose.weight, block.conv_transpose.bias
    stream = torch.cuda.current_stream().cuda_stream
    calls = {"deconvtune module (Python path)": lambda: block(x),
             "deconvtune Plan.run via ctypes (no torch)": lambda: plan.run(x.data_ptr(), w.data_ptr(), b.data_ptr(),
                                                                           y.data_ptr(), stream),
             "PyTorch eager Model": lambda: model(x)}
    if not args.skip_compile:
        compiled_model, compiled_block = torch.compile(model), torch.compile(block, fullgraph=True)
        calls["torch.compile(Model)"] = lambda: compiled_model(x)
        calls["torch.compile(module)"] = lambda: compiled_block(x)
    out = {}
    with torch.no_grad():
        for name, fn in calls.items():
            for _ in range(50):
                fn()
            torch.cuda.synchronize()
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(400):
                    fn()
                torch.cuda.synchronize()
                samples.append((time.perf_counter() - t0) / 400 * 1e6)
            out[name] = statistics.median(samples)
            run_bench.log(f"host overhead: {name}: {out[name]:.1f} us/call")
    return out


def f(v, digits=3):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def render(doc):
    lines = [f"# deconvtune Python module vs PyTorch ({doc['device']}, {doc['date_utc']})", "",
             f"torch {doc['torch']}, deconvtune {doc['deconvtune']} (library {doc['library']}), "
             f"{doc['reps']} timed runs (median, CUDA events, L2 flushed before each). The module's time "
             "includes its Python per-call path. Errors are max |y - float64 PyTorch| over the whole output.",
             "", "| problem | precision | eager ms | torch.compile ms | deconvtune module ms | vs eager | "
             "vs compile | max abs err (bound) | eager err | config (source) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    failures = 0
    for r in doc["problems"]:
        for precision, row in r["rows"].items():
            m, e = row["module"]["median_ms"], row["eager"]["median_ms"]
            c = row.get("compiled", {}).get("median_ms")
            failures += not row["ok"]
            lines.append(
                f"| {r['name']} | {precision} | {f(e)} | {f(c) if c else row.get('compiled_error', 'skipped')[:40]} | "
                f"{f(m)} | {f(e / m, 2)}x | {f(c / m, 2) + 'x' if c else 'n/a'} | "
                f"{row['max_abs_err']:.2e} ({row['bound']:.1e}){'' if row['ok'] else ' **FAILED**'} | "
                f"{row['eager_max_abs_err']:.1e} | `{row['config']}` ({row['source'].split(':')[0]}) |")
    lines += ["", f"Outputs within bound: {sum(len(r['rows']) for r in doc['problems']) - failures} of "
              f"{sum(len(r['rows']) for r in doc['problems'])}.", "",
              "## Per-call host overhead (1x16x16x16 input, back-to-back calls, wall clock)", "",
              "| path | us per call |", "| --- | ---: |"]
    lines += [f"| {name} | {us:.1f} |" for name, us in doc.get("host_overhead_us", {}).items()]
    lines += ["", "Shapes:", ""] + [f"- {r['name']}: {r['shape']}" for r in doc["problems"]]
    return "\n".join(lines) + "\n", failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", default=os.path.join(HERE, "problems.jsonl"))
    parser.add_argument("--reference-dir", default=os.path.join(HERE, "reference"))
    parser.add_argument("--only", default="", help="comma-separated problem names")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile rows")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch
    import deconvtune
    sys.path.insert(0, args.reference_dir)
    import seed_model
    out = args.out or (os.path.join(os.environ["OUT"], "api") if os.environ.get("OUT")
                       else os.path.join(HERE, "results", "latest-api"))
    os.makedirs(out, exist_ok=True)
    problems = run_bench.load_problems(args.problems, [n for n in args.only.split(",") if n] or None)
    timer = run_bench.Timer(args.reps, args.warmup, 256)
    doc = {"date_utc": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), "device": torch.cuda.get_device_name(),
           "torch": torch.__version__, "deconvtune": deconvtune.__version__, "library": deconvtune.library_path(),
           "reps": args.reps, "problems": []}
    for p in problems:
        doc["problems"].append(bench_problem(p, args, timer, seed_model))
        text, failures = render(doc)  # rewritten after each problem: a killed run keeps what it measured
        with open(os.path.join(out, "python_bench.md"), "w") as fh:
            fh.write(text)
    doc["host_overhead_us"] = host_overhead(args, seed_model)
    text, failures = render(doc)
    with open(os.path.join(out, "python_bench.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "python_bench.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
