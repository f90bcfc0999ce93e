#!/usr/bin/env python3
"""Whole decoders on the GPU: eager PyTorch, torch.compile, deconvtune's convert() and its backend.

Three decoders written as users write them (nn.Sequential of ConvTranspose2d -> BatchNorm2d ->
activation, and the same with functional calls in forward), 256 -> 128 -> 64 -> 32 channels,
8x8 -> 64x64, batch 32, eval mode. In one process, each is timed (bench/run_bench.py's Timer: CUDA
events, L2 flushed before each run, median of --reps) as:
  - eager, cuDNN TF32 on (PyTorch's default);
  - torch.compile(model) (mode "default");
  - deconvtune.torch.convert(model, example_inputs) (keep_faster on: blocks not faster fused stay
    unfused), and convert(..., keep_faster=False) beside it, so the table shows what keeping costs
    or saves;
  - torch.compile(model, backend="deconvtune");
  - deconvtune.torch.autotune(model, x, budget_s=--tune-budget) into a DB of this run (shared by
    the decoders, which meet some problems twice), then convert(model, x, db_path=that DB): what a
    user gets after tuning once (on the CPU self-test the tuner simulates, so only the plumbing runs);
and each output is checked against a float64 run of the same model: within the TF32 bound
(deconvtune.torch.PRECISION_BOUNDS, relative to max(1, |y|)) beyond eager's own error. Rows that
need torch.compile are skipped, saying so, where PyTorch has none (< 2.0). Writes decoder_bench.md
and decoder_bench.json to --out (default $OUT/decoders, else bench/results/latest-decoders).

    python3 bench/decoder_bench.py [--only dcgan,functional] [--reps 20] [--tune-budget 30] [--out DIR]
Needs PYTHONPATH=python (or `pip install ./python`) and DECONVTUNE_LIBRARY_PATH.
CPU check of everything but the GPU (tiny batch, wall clock, no L2 flush; torch 1.13 is enough):
    PYTHONPATH=python /usr/bin/python3 bench/decoder_bench.py --selftest
"""
import argparse
import copy
import datetime
import json
import math
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (Timer, sync, free_cache, log: the same timing as the other benchmarks)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

CHANNELS = (256, 128, 64, 32)
BATCH, SIZE = 32, 8  # the input: 32 x 256 x 8 x 8; three stride-2 blocks make it 64 x 64


def randomize_batchnorms(model):
    """Statistics and affine parameters far from the identity, so folding them is exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def dcgan():
    """DCGAN's generator body: k4 s2 p1, BatchNorm2d, ReLU, three times."""
    layers = []
    for cin, cout in zip(CHANNELS, CHANNELS[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def sequential_mixed():
    """k3 s2 with output_padding, and a different activation per block (LeakyReLU, SiLU, Mish)."""
    activations = (nn.LeakyReLU(0.2), nn.SiLU(), nn.Mish())
    layers = []
    for (cin, cout), activation in zip(zip(CHANNELS, CHANNELS[1:]), activations):
        layers += [nn.ConvTranspose2d(cin, cout, 3, 2, 1, 1), nn.BatchNorm2d(cout), activation]
    return nn.Sequential(*layers)


class Functional(nn.Module):
    """The DCGAN body written in forward with F.conv_transpose2d on its own weights, F.batch_norm on
    its own statistics and F.relu / F.leaky_relu / torch.tanh: the form convert() has to trace."""

    def __init__(self):
        super().__init__()
        for i, (cin, cout) in enumerate(zip(CHANNELS, CHANNELS[1:])):
            setattr(self, f"w{i}", nn.Parameter(torch.randn(cin, cout, 4, 4) / math.sqrt(cin * 4)))
            setattr(self, f"b{i}", nn.Parameter(torch.randn(cout) * 0.1))
            self.register_buffer(f"mean{i}", torch.rand(cout) - 0.5)
            self.register_buffer(f"var{i}", torch.rand(cout) * 1.5 + 0.5)
            setattr(self, f"gamma{i}", nn.Parameter(torch.rand(cout) + 0.5))
            setattr(self, f"beta{i}", nn.Parameter(torch.rand(cout) - 0.5))

    def forward(self, x):
        for i, activation in enumerate((F.relu, lambda y: F.leaky_relu(y, 0.1), torch.tanh)):
            x = F.conv_transpose2d(x, getattr(self, f"w{i}"), getattr(self, f"b{i}"), stride=2, padding=1)
            x = F.batch_norm(x, getattr(self, f"mean{i}"), getattr(self, f"var{i}"), getattr(self, f"gamma{i}"),
                             getattr(self, f"beta{i}"), False, 0.1, 1e-5)
            x = activation(x)
        return x


DECODERS = {"dcgan": dcgan, "sequential_mixed": sequential_mixed, "functional": Functional}


def has_compile():
    return hasattr(torch, "compile")


def converted(model, x, keep_faster, db_path=None):
    import deconvtune.torch as dtorch
    module, records = dtorch.convert(model, (x,), report=True, keep_faster=keep_faster, db_path=db_path)
    return module, [{"name": r.name, "fused": r.fused, "reason": r.reason, "epilogue": r.epilogue} for r in records]


def tuned_then_converted(model, x, args):
    """autotune's winners for the model's problems into args.tune_db, then convert() using them; the
    records add each tuned problem's winner."""
    import deconvtune.torch as dtorch
    results = dtorch.autotune(model, (x,), budget_s=args.tune_budget, db=args.tune_db, progress=False,
                              simulate=x.device.type != "cuda")
    module, records = converted(model, x, True, args.tune_db)
    for result in results:
        records.append({"name": result.name, "tuned": True, "winner": result.winner, "winner_ms": result.winner_ms,
                        "reason": result.reason, "trials": result.trials})
    return module, records


def block_records(row):
    """A row's records of convert()'s blocks (without autotune's)."""
    return [r for r in row.get("records") or [] if not r.get("tuned")]


def compiled(model, backend="inductor"):
    # A fresh dynamo cache: the second torch.compile of the same forward must not reuse the first's code.
    torch._dynamo.reset()
    if backend == "deconvtune":
        import deconvtune.torch as dtorch
        dtorch.enable()  # registers the backend's name with dynamo
    return torch.compile(model, backend=backend)


TUNED_ROW = "autotune, then convert(model, x, db_path)"


def ways(model, x, args):
    """(row name, a function building the callable to time and the records it reports, or a reason
    the row is skipped)."""
    no_compile = "skipped: this PyTorch has no torch.compile (needs >= 2.0)"
    no_tuning = "skipped: --tune-budget 0"
    return [("eager (TF32)", lambda: (model, None)),
            ("torch.compile", (lambda: (compiled(model), None)) if has_compile() else no_compile),
            ("convert(model, x)", lambda: converted(model, x, True)),
            ("convert(keep_faster=False)", lambda: converted(model, x, False)),
            ("torch.compile(backend='deconvtune')",
             (lambda: (compiled(model, "deconvtune"), None)) if has_compile() else no_compile),
            (TUNED_ROW, (lambda: tuned_then_converted(model, x, args)) if args.tune_budget > 0 else no_tuning)]


def bench_decoder(name, args, timer, device):
    import deconvtune.torch as dtorch
    torch.manual_seed(0)
    model = randomize_batchnorms(DECODERS[name]()).eval().to(device)
    x = torch.randn(args.batch, CHANNELS[0], args.size, args.size, device=device)
    with torch.no_grad():
        exact = copy.deepcopy(model).double()(x.double())
    scale = max(1.0, exact.abs().max().item())
    bound = dtorch.PRECISION_BOUNDS["tf32"] * scale
    result = {"name": name, "input": list(x.shape), "output": list(exact.shape), "rows": {}}
    eager_err = None
    for row_name, build in ways(model, x, args):
        if isinstance(build, str):
            result["rows"][row_name] = {"skipped": build}
            continue
        row = {}
        try:
            t0 = time.perf_counter()
            fn, records = build()
            with torch.no_grad():
                y = fn(x)  # the first call compiles, plans or loads the kernels
            run_bench.sync()
            row["first_call_s"] = time.perf_counter() - t0
            row["max_abs_err"] = (y.double() - exact).abs().max().item()
            del y
            if eager_err is None:  # the eager row comes first: every other row may err as much, plus the bound
                eager_err = row["max_abs_err"]
            row["allowed"] = eager_err + bound
            row["ok"] = row["max_abs_err"] <= row["allowed"]  # NaN fails
            if records is not None:
                row["records"] = records
            with torch.no_grad():
                row["time"] = timer(lambda: fn(x))
        except Exception as e:  # recorded, not fatal: the other rows still mean something
            row["error"] = f"{type(e).__name__}: {e}"[:400]
        result["rows"][row_name] = row
        run_bench.log(f"{name:>16} {row_name:<36} " + (
            f"{row['time']['median_ms']:.3f} ms, max|err| {row['max_abs_err']:.2e} <= {row['allowed']:.2e}: "
            f"{'ok' if row['ok'] else 'FAILED'}" if "time" in row else row.get("error", "")))
    del exact
    run_bench.free_cache()
    return result


def cell(row, eager_ms):
    if "skipped" in row:
        return row["skipped"], ""
    if "time" not in row:
        return "error: " + row.get("error", "?")[:60], ""
    ms = row["time"]["median_ms"]
    return f"{ms:.3f}", f"{eager_ms / ms:.2f}x" if eager_ms else ""


def render(doc):
    """(the markdown, the number of rows over their error bound or failed)."""
    lines = [f"# Whole decoders: eager, torch.compile and deconvtune ({doc['device']}, {doc['date_utc']})", "",
             f"torch {doc['torch']}, deconvtune {doc['deconvtune']}. Batch {doc['batch']}, channels "
             f"{' -> '.join(map(str, CHANNELS))}, {doc['size']}x{doc['size']} -> {doc['size'] * 8}x{doc['size'] * 8}. "
             f"Median of {doc['reps']} runs ({doc['timing']}). Errors: max "
             "|y - float64| over the whole output; allowed: eager's own error + the TF32 bound x max(1, |y|).", "",
             "| decoder | way | ms | vs eager | max abs err (allowed) | blocks fused |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    bad = 0
    for d in doc["decoders"]:
        eager = d["rows"].get("eager (TF32)", {})
        eager_ms = eager.get("time", {}).get("median_ms")
        for way, row in d["rows"].items():
            ms, ratio = cell(row, eager_ms)
            bad += "error" in row or row.get("ok") is False
            err = (f"{row['max_abs_err']:.2e} ({row['allowed']:.1e})" + ("" if row["ok"] else " **FAILED**")
                   if "max_abs_err" in row else "")
            records = block_records(row)
            fused = f"{sum(r['fused'] for r in records)} of {len(records)}" if records else ""
            lines.append(f"| {d['name']} | {way} | {ms} | {ratio} | {err} | {fused} |")
    lines += ["", "convert()'s reasons (keep_faster on):", ""]
    for d in doc["decoders"]:
        for r in d["rows"].get("convert(model, x)", {}).get("records", []):
            lines.append(f"- {d['name']} `{r['name']}` ({r['epilogue'] or '-'}): {r['reason']}")
    tuned = [(d["name"], r) for d in doc["decoders"] for r in d["rows"].get(TUNED_ROW, {}).get("records") or []
             if r.get("tuned")]
    if tuned:
        lines += ["", f"autotune's winners (budget {doc['tune_budget_s']} s per decoder; a problem an earlier "
                      "decoder tuned is not measured again):", ""]
        for name, r in tuned:
            result = (f"`{r['winner']}` {r['winner_ms']:.4f} ms" if r["winner"] else f"no winner: {r['reason']}")
            lines.append(f"- {name} `{r['name']}`: {result} ({r['trials']} trials in this run)")
    return "\n".join(lines) + "\n", bad


def write(doc, out):
    text, bad = render(doc)
    with open(os.path.join(out, "decoder_bench.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "decoder_bench.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    return text, bad


def run(args, device):
    import deconvtune
    run_bench.DEVICE = device  # the Timer's and sync's device: CUDA events on "cuda", wall clock on "cpu"
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)
    # The tuned row's DB: new for each run, so its winners are this run's (kept beside the table).
    args.tune_db = os.path.join(args.out, "decoder_bench_tuning.db")
    for stale in (args.tune_db, args.tune_db + "-wal", args.tune_db + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    timer = run_bench.Timer(args.reps, args.warmup, args.flush_mib)
    doc = {"date_utc": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"),
           "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (self-test)",
           "torch": torch.__version__, "deconvtune": deconvtune.__version__, "batch": args.batch, "size": args.size,
           "reps": args.reps, "tune_budget_s": args.tune_budget, "decoders": [],
           "timing": ("CUDA events, L2 flushed before each, cuDNN TF32 on" if device == "cuda"
                      else "wall clock on the CPU: only the self-test's, meaning nothing")}
    for name in [n for n in args.only.split(",") if n] or list(DECODERS):
        doc["decoders"].append(bench_decoder(name, args, timer, device))
        text, bad = write(doc, args.out)  # after each decoder: a killed run keeps what it measured
    return doc, text, bad


def selftest():
    """Every decoder through every row on the CPU, small: the rows run, convert() fuses every block,
    the outputs are within their bound, the table and JSON are written."""
    out = tempfile.mkdtemp(prefix="decoder-bench-selftest-")
    args = argparse.Namespace(only="", reps=2, warmup=1, flush_mib=0, batch=2, size=4, out=out, tune_budget=5)
    doc, text, bad = run(args, "cpu")
    failures = []
    for d in doc["decoders"]:
        for way, row in d["rows"].items():
            if "skipped" in row:
                if has_compile() or "torch.compile" not in way:
                    failures.append(f"{d['name']} {way}: skipped: {row['skipped']}")
            elif not row.get("ok") or "time" not in row:
                failures.append(f"{d['name']} {way}: {row.get('error') or row}")
        records = d["rows"]["convert(keep_faster=False)"].get("records", [])
        if [r["fused"] for r in records] != [True] * 3:
            failures.append(f"{d['name']}: convert fused {records}, not all three blocks")
        tuned = [r for r in d["rows"][TUNED_ROW].get("records") or [] if r.get("tuned")]
        if not tuned or not all(r["winner"] for r in tuned):
            failures.append(f"{d['name']}: autotune gave {tuned}, not a (simulated) winner per problem")
        if d["output"] != [2, CHANNELS[-1], 32, 32]:
            failures.append(f"{d['name']}: output shape {d['output']}")
    with open(os.path.join(out, "decoder_bench.json")) as fh:
        if json.load(fh)["decoders"][-1]["name"] != "functional":
            failures.append("decoder_bench.json lacks the last decoder")
    if bad or failures or "| dcgan | convert(model, x) |" not in text:
        failures.append(f"{bad} bad rows in the table")
    print(text)
    for failure in failures:
        print("FAILED:", failure)
    print("selftest:", "FAILED" if failures else "ok", f"({out})")
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated decoders ({', '.join(DECODERS)})")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--flush-mib", type=int, default=256)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--size", type=int, default=SIZE, help="the input's height and width")
    parser.add_argument("--tune-budget", type=float, default=30,
                        help="seconds of autotune per decoder for the tuned row (0: no tuned row)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--selftest", action="store_true", help="a small run on the CPU (no GPU needed)")
    args = parser.parse_args(argv)
    if args.selftest:
        return selftest()
    if not torch.cuda.is_available():
        print("decoder_bench: needs a CUDA GPU (run --selftest on a CPU machine)", file=sys.stderr)
        return 2
    args.out = args.out or (os.path.join(os.environ["OUT"], "decoders") if os.environ.get("OUT")
                            else os.path.join(HERE, "results", "latest-decoders"))
    _, text, bad = run(args, "cuda")
    print(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
