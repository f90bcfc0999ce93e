#!/usr/bin/env python3
"""On the device: where the Python path's per-call host time goes, for one small fused block (a
DCGAN decoder's first: 32 x 256 x 8 x 8, k4 s2 p1, relu), whose kernel is far shorter than the call.

Back-to-back calls under torch.no_grad, wall clock per call (median of 5 batches of --calls, the GPU
synchronised only at each batch's end): the module, the public function, the custom op, the CUDA
forward underneath, its pieces (stream lookup, output allocation, the ctypes launch), eager PyTorch;
then cProfile of the module's calls, the 25 functions with the most own time; then torch.profiler
of bench/decoder_bench.py's dcgan decoder as convert() and as the torch.compile backend build it
(which kernels each launches, and the host time per op). Needs what
python_gpu.sh exports (PYTHONPATH=python, DECONVTUNE_LIBRARY_PATH or the carried library).

    python3 bench/device/host_overhead.py [--calls 2000]
"""
import argparse
import cProfile
import pstats
import statistics
import time

import os
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile as torch_profile

import deconvtune.torch as dtorch
from deconvtune import torch as impl


def per_call_us(fn, calls):
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    batches = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        batches.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(batches)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(32, 256, 8, 8, device="cuda")
    module = dtorch.ConvTranspose2dEpilogue(256, 128, 4, 2, 1, epilogue="relu").cuda().eval()
    w, b = module.conv_transpose.weight.detach(), module.conv_transpose.bias.detach()
    canonical = ([2, 2], [1, 1], [0, 0], 1, [1, 1], "relu", None, "", "heuristic")
    with torch.no_grad():
        y = module(x)
        torch.cuda.synchronize()
        plan = impl._plan(x.device.index, module.problem(x.shape, module.current_precision(), "float32", "NCHW"),
                          "", "heuristic")
        stream = torch.cuda.current_stream().cuda_stream
        rows = [
            ("module(x)", lambda: module(x)),
            ("conv_transpose2d_epilogue(...)",
             lambda: dtorch.conv_transpose2d_epilogue(x, w, b, 2, 1, 0, 1, 1, epilogue="relu")),
            ("the custom op / autograd.Function (_apply)", lambda: impl._apply(x, w, b, *canonical)),
            ("_forward (the CUDA path underneath)", lambda: impl._forward(x, w, b, *canonical)),
            ("torch.cuda.current_stream(dev).cuda_stream", lambda: torch.cuda.current_stream(x.device).cuda_stream),
            ("torch.empty(output)", lambda: torch.empty(plan.output_shape, dtype=x.dtype, device=x.device)),
            ("Plan.run via ctypes", lambda: plan.run(x.data_ptr(), w.data_ptr(), b.data_ptr(), y.data_ptr(), stream)),
            ("eager F.conv_transpose2d + relu", lambda: F.relu(F.conv_transpose2d(x, w, b, 2, 1))),
        ]
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, custom op: {impl.HAS_CUSTOM_OP}")
        print("| path | us per call |\n| --- | ---: |")
        for name, fn in rows:
            print(f"| {name} | {per_call_us(fn, args.calls):.1f} |")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.calls):
            module(x)
        profile.disable()
        torch.cuda.synchronize()
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    profile_decoder()


def profile_decoder():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import decoder_bench
    torch.manual_seed(0)
    model = decoder_bench.randomize_batchnorms(decoder_bench.dcgan()).eval().cuda()
    x = torch.randn(32, 256, 8, 8, device="cuda")
    for name, build in (("convert", lambda: decoder_bench.converted(model, x, False)[0]),
                        ("backend", lambda: decoder_bench.compiled(model, "deconvtune")),
                        ("inductor", lambda: decoder_bench.compiled(model))):
        fn = build()
        with torch.no_grad():
            for _ in range(20):
                fn(x)
            torch.cuda.synchronize()
            with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    fn(x)
                torch.cuda.synchronize()
        print(f"\n== dcgan, {name}: 10 calls")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=60))


if __name__ == "__main__":
    main()
