"""deconvtune.torch.convert: whole models, through torch.fx.

CPU part (Debian's PyTorch 1.13 under /usr/bin/python3 is enough): decoders written with
nn.Sequential and with functional calls are converted without edits and match the original on the
CPU path, eval-mode BatchNorm2d is folded, the report names every ConvTranspose2d and why it was or
was not fused (output used twice, op not supported, BatchNorm in training mode, ...), the original
is untouched, the converted model trains, and a converted model that fails its check on
example_inputs is kept unfused; with example inputs on CUDA (made to count as such here, with fake
timings) a block whose fused module is not faster than its ops is kept unfused, the report giving
both times. GPU part (skipped without CUDA and the library): the same decoders converted on the GPU
match the original within the precision's bound, gradients included, and a decoder converted with
CUDA example inputs reports every block's two times.

Environment: DECONVTUNE_TEST_LIBRARY_DIR (the library's folder; empty: GPU checks are skipped),
DECONVTUNE_DB (the tests' DB path).
"""
import copy
import json
import os
import pathlib
import re
import subprocess
import tempfile
import unittest
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

import deconvtune.torch as dtorch
from deconvtune import _convert as dconvert  # after deconvtune.torch, which imports it

LIBRARY_DIR = os.environ.get("DECONVTUNE_TEST_LIBRARY_DIR", "")
if LIBRARY_DIR:
    os.environ["DECONVTUNE_LIBRARY_PATH"] = LIBRARY_DIR
os.environ.setdefault("DECONVTUNE_DB", os.path.join(tempfile.mkdtemp(prefix="deconvtune-convert-test-"), "t.db"))
# CTest runs the GPU cases as their own test (Api.PythonTorchGpu, reported skipped without a GPU)
# and sets DECONVTUNE_TEST_GPU=0 for the CPU run; run by hand, a file runs both.
GPU_SKIP = ("needs a CUDA GPU and the library" if not (torch.cuda.is_available() and LIBRARY_DIR) else
            "run by CTest's Api.PythonTorchGpu" if os.environ.get("DECONVTUNE_TEST_GPU") == "0" else "")


def randomize_batchnorms(model):
    """Statistics and affine parameters far from the identity, so folding them matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def sequential_decoder():
    """A DCGAN-style generator: ConvTranspose2d, BatchNorm2d, activation, three times, then Tanh."""
    return randomize_batchnorms(nn.Sequential(
        nn.ConvTranspose2d(16, 12, 4, 2, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(12, 8, 3, 2, 1, 1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(8, 8, 3, 1, 1, groups=2), nn.BatchNorm2d(8), nn.Mish(), nn.Hardtanh(-2, 2),
        nn.ConvTranspose2d(8, 3, 3, 2, 1, 1), nn.Tanh())).eval()


class FunctionalDecoder(nn.Module):
    """The same kind of decoder written in forward with functional calls and operators, with a skip
    connection (an output used twice), an op the epilogue lacks and a conv with output_size."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(16, 8, 3, 3) * 0.2)
        self.b1 = nn.Parameter(torch.randn(8) * 0.1)
        self.bn1 = nn.BatchNorm2d(8)
        self.up2 = nn.ConvTranspose2d(8, 8, 3, 1, 1)
        self.up3 = nn.ConvTranspose2d(8, 6, 4, 2, 1)
        self.up4 = nn.ConvTranspose2d(6, 6, 3, 1, 1)
        self.up5 = nn.ConvTranspose2d(6, 4, 3, 2, 1)
        randomize_batchnorms(self)

    def forward(self, x):
        x = F.conv_transpose2d(x, self.w1, self.b1, stride=2, padding=1, output_padding=1)
        x = self.bn1(x)
        x = torch.clamp(F.hardtanh(F.mish(x) + 0.5, -1, 1) * 2, -1.5, 1.5)
        skip = self.up2(x)
        x = F.relu(skip) + skip  # up2's output is used twice: the relu stays out of it
        x = 0.5 * torch.sigmoid(self.up3(x)) - 0.25
        x = F.elu(self.up4(x))  # not an epilogue op
        return self.up5(x, output_size=[x.shape[2] * 2, x.shape[3] * 2]).tanh()


def records_by_name(records):
    return {r.name: r for r in records}


class Conversion(unittest.TestCase):
    def check_converts_and_matches(self, model, x):
        original_state = copy.deepcopy(model.state_dict())
        converted, records = dtorch.convert(model, (x,), precision="fp32", report=True)
        with torch.no_grad():
            expected, got = model(x), converted(x)
        self.assertTrue(torch.allclose(got, expected, rtol=1e-5, atol=1e-5), (got - expected).abs().max())
        # The original is untouched: same modules, same values.
        self.assertFalse(any(isinstance(m, dtorch.ConvTranspose2dEpilogue) for m in model.modules()))
        for key, value in model.state_dict().items():
            self.assertTrue(torch.equal(value, original_state[key]), key)
        return converted, records

    def test_a_sequential_decoder(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        converted, records = self.check_converts_and_matches(model, torch.randn(2, 16, 5, 4))
        self.assertEqual([(r.name, r.fused, r.batchnorm, r.epilogue) for r in records], [
            ("0", True, "1", "relu"), ("3", True, "4", "leaky_relu:0.2"),
            ("6", True, "7", "mish,hardtanh:-2.0:2.0"), ("10", True, "", "tanh")])
        self.assertIn("the chain stops: op 3 (ConvTranspose2d) is not supported by the epilogue", records[0].reason)
        self.assertIn("the chain reaches forward's output", records[3].reason)
        fused = [m for m in converted.modules() if isinstance(m, dtorch.ConvTranspose2dEpilogue)]
        self.assertEqual(len(fused), 4)
        self.assertFalse(any(isinstance(m, (nn.BatchNorm2d, nn.ReLU, nn.Tanh)) for m in converted.modules()))
        self.assertEqual({m.precision for m in fused}, {"fp32"})
        self.assertIn("0.conv_transpose.weight", converted.state_dict())  # fused in place of the conv

    def test_the_fused_modules_use_the_tuning_db_given(self):
        model = sequential_decoder()
        folder = tempfile.mkdtemp(prefix="convert-db-")
        for db_path, expected in ((None, None), (os.path.join(folder, "tuned.db"), os.path.join(folder, "tuned.db")),
                                  (pathlib.Path(folder) / "p.db", os.path.join(folder, "p.db"))):
            converted = dtorch.convert(model, db_path=db_path)
            fused = [m for m in converted.modules() if isinstance(m, dtorch.ConvTranspose2dEpilogue)]
            self.assertEqual(len(fused), 4)
            self.assertEqual({m.db_path for m in fused}, {expected})
        with self.assertRaisesRegex(TypeError, "convert: db_path must be a path or None, got int"):
            dtorch.convert(model, db_path=3)

    def test_a_functional_decoder(self):
        torch.manual_seed(0)
        model = FunctionalDecoder().eval()
        converted, records = self.check_converts_and_matches(model, torch.randn(2, 16, 3, 4))
        by_name = records_by_name(records)
        self.assertEqual(len(records), 5)
        functional = by_name["conv_transpose2d (F.conv_transpose2d, weight w1)"]
        self.assertTrue(functional.fused)
        self.assertEqual(functional.batchnorm, "bn1")
        self.assertEqual(functional.epilogue, "mish,add:0.5,hardtanh:-1.0:1.0,mul:2.0,clamp:-1.5:1.5")
        self.assertFalse(by_name["up2"].fused)
        self.assertIn("nothing to fuse after it: the output of up2 is used twice (relu, add_1)",
                      by_name["up2"].reason)
        self.assertTrue(by_name["up3"].fused)
        self.assertEqual(by_name["up3"].epilogue, "sigmoid,mul:0.5,add:-0.25")
        self.assertFalse(by_name["up4"].fused)
        self.assertIn("op torch.nn.functional.elu is not supported by the epilogue", by_name["up4"].reason)
        self.assertFalse(by_name["up5"].fused)
        self.assertIn("output_size", by_name["up5"].reason)
        # The functional call's weight moved into the fused module; no stale copy is left behind.
        self.assertFalse(hasattr(converted, "w1"))

    def test_batchnorm_in_training_mode_is_not_folded_and_said_why(self):
        torch.manual_seed(0)
        model = sequential_decoder().train()
        x = torch.randn(4, 16, 5, 4)
        statistics = copy.deepcopy(model[1].state_dict())
        converted, records = dtorch.convert(model, (x,), report=True)
        self.assertEqual([r.fused for r in records], [False, False, False, True])
        self.assertIn("BatchNorm2d '1' right after it cannot be folded: it is in training mode", records[0].reason)
        for key, value in model[1].state_dict().items():  # the check ran copies: no statistics updated
            self.assertTrue(torch.equal(value, statistics[key]), key)
        with torch.no_grad():  # on copies: a training-mode BatchNorm updates its statistics
            self.assertTrue(torch.allclose(copy.deepcopy(converted)(x), copy.deepcopy(model)(x), atol=1e-5))

    def test_a_functional_batch_norm_on_module_tensors_is_folded(self):
        class Functional(nn.Module):
            def __init__(self):
                super().__init__()
                self.up = nn.ConvTranspose2d(4, 6, 3, 2, 1, groups=2)
                self.register_buffer("mean", torch.randn(6) * 0.3)
                self.register_buffer("var", torch.rand(6) + 0.5)
                self.gamma, self.beta = nn.Parameter(torch.rand(6) + 0.5), nn.Parameter(torch.randn(6) * 0.2)

            def forward(self, x):
                return F.silu(F.batch_norm(self.up(x), self.mean, self.var, self.gamma, self.beta, False, 0.1, 1e-3))

        torch.manual_seed(0)
        model, x = Functional(), torch.randn(2, 4, 5, 5)
        converted, (record,) = self.check_converts_and_matches(model, x)
        self.assertEqual((record.fused, record.epilogue), (True, "silu"))
        self.assertTrue(record.batchnorm.startswith("batch_norm (torch.nn.functional.batch_norm)"), record.batchnorm)
        self.assertEqual([n for n, _ in converted.named_buffers()], [])  # folded: no statistics left behind
        self.assertEqual(sorted(n for n, _ in converted.named_parameters()),
                         ["up.conv_transpose.bias", "up.conv_transpose.weight"])

    def test_what_the_chain_does_not_take(self):
        class Block(nn.Module):
            def __init__(self, tail):
                super().__init__()
                self.up, self.tail = nn.ConvTranspose2d(4, 4, 3), tail

            def forward(self, x):
                return self.tail(self.up(x))

        cases = [(lambda y: y / 2, "op operator.truediv is not supported by the epilogue: division"),
                 (lambda y: F.gelu(y, approximate="tanh"), "approximate='tanh'"),
                 (nn.Softplus(beta=2), "softplus with beta=2"),
                 (lambda y: torch.clamp(y, min=0), "clamp with one bound"),
                 (lambda y: y * 1e39, "fp32 range"),
                 (lambda y: y + y, "it takes a second tensor"),
                 (lambda y: torch.cat([y, y]), "op torch.cat is not supported")]
        x = torch.randn(1, 4, 3, 3)
        for tail, message in cases:
            model = Block(tail)
            converted, (record,) = dtorch.convert(model, (x,), report=True)
            self.assertFalse(record.fused, message)
            self.assertIn(message, record.reason)
            self.assertTrue(torch.equal(converted(x), model(x)), message)

    def test_every_supported_form_of_every_op(self):
        forms = [(nn.ReLU6(), "hardtanh:0.0:6.0"), (lambda y: F.relu6(y), "hardtanh:0.0:6.0"),
                 (nn.GELU(), "gelu"), (nn.SiLU(), "silu"), (lambda y: F.silu(y), "silu"),
                 (nn.Sigmoid(), "sigmoid"), (lambda y: y.sigmoid(), "sigmoid"), (lambda y: F.tanh(y), "tanh"),
                 (lambda y: torch.tanh(y), "tanh"), (nn.Softplus(), "softplus"), (lambda y: F.softplus(y), "softplus"),
                 (lambda y: torch.relu(y), "relu"), (lambda y: y.relu(), "relu"), (nn.Identity(), None),
                 (lambda y: F.leaky_relu(y, 0.3), "leaky_relu:0.3"), (lambda y: y.clamp(-1, 2), "clamp:-1.0:2.0"),
                 (lambda y: torch.clip(y, -1, 2), "clamp:-1.0:2.0"), (lambda y: torch.add(y, 3), "add:3.0"),
                 (lambda y: torch.mul(2, y), "mul:2.0"), (lambda y: y.add(1).mul_(3), "add:1.0,mul:3.0"),
                 (lambda y: y - 1, "add:-1.0"), (lambda y: 1 - y, "mul:-1.0,add:1.0"),
                 (lambda y: torch.sub(y, 2), "add:-2.0"), (lambda y: F.hardtanh(y, -3, 3), "hardtanh:-3.0:3.0")]
        x = torch.randn(1, 4, 3, 3)
        for tail, epilogue in forms:
            model = nn.Sequential(nn.ConvTranspose2d(4, 4, 3), tail if isinstance(tail, nn.Module) else _Lambda(tail))
            converted, (record,) = dtorch.convert(model, (x,), report=True)
            self.assertEqual(record.fused, epilogue is not None, (epilogue, record.reason))
            if epilogue:
                self.assertEqual(record.epilogue, epilogue)
            with torch.no_grad():
                self.assertTrue(torch.allclose(converted(x), model(x), atol=1e-6), epilogue)

    def test_a_module_called_twice_is_fused_at_each_call(self):
        class Twice(nn.Module):
            def __init__(self):
                super().__init__()
                self.up = nn.ConvTranspose2d(4, 4, 3, 1, 1)

            def forward(self, x):
                return torch.tanh(self.up(F.relu(self.up(x))))

        model = Twice()
        x = torch.randn(1, 4, 5, 5)
        converted, records = dtorch.convert(model, (x,), report=True)
        self.assertEqual([(r.name, r.fused, r.epilogue) for r in records], [("up", True, "relu"), ("up", True, "tanh")])
        with torch.no_grad():
            self.assertTrue(torch.allclose(converted(x), model(x), atol=1e-6))
        fused = [m for m in converted.modules() if isinstance(m, dtorch.ConvTranspose2dEpilogue)]
        self.assertEqual(len({m.conv_transpose.weight.data_ptr() for m in fused}), 1)  # still one weight

    def test_a_functional_call_on_a_called_modules_weight_leaves_the_module_whole(self):
        class Shared(nn.Module):
            def __init__(self):
                super().__init__()
                self.up = nn.ConvTranspose2d(4, 4, 3, 1, 1)

            def forward(self, x):
                y = F.conv_transpose2d(x, self.up.weight, self.up.bias, 1, 1).relu()
                return self.up(y) + 1

        model = Shared()
        x = torch.randn(1, 4, 5, 5)
        converted, records = dtorch.convert(model, (x,), report=True)
        self.assertEqual([r.fused for r in records], [True, True])
        with torch.no_grad():
            self.assertTrue(torch.allclose(converted(x), model(x), atol=1e-6))

    def test_the_converted_model_trains_like_the_original(self):
        torch.manual_seed(0)
        model = FunctionalDecoder().eval()
        converted = dtorch.convert(model)
        x = torch.randn(2, 16, 3, 4, requires_grad=True)
        grad_y = torch.randn(2, 4, 24, 32)
        (got,) = torch.autograd.grad(converted(x), x, grad_y)
        (expected,) = torch.autograd.grad(model(x), x, grad_y)
        self.assertTrue(torch.allclose(got, expected, rtol=1e-4, atol=1e-5))
        grads = torch.autograd.grad(converted(x), [converted.up3.conv_transpose.weight], grad_y)
        (want,) = torch.autograd.grad(model(x), [model.up3.weight], grad_y)
        self.assertTrue(torch.allclose(grads[0], want, rtol=1e-4, atol=1e-5))

    def test_a_block_failing_its_check_on_example_inputs_stays_unfused(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        x = torch.randn(2, 16, 5, 4)
        forward = dtorch.ConvTranspose2dEpilogue.forward

        def wrong_after_leaky_relu(self, x):  # one block computes something else
            return forward(self, x) + (1e-3 if self.epilogue.startswith("leaky_relu") else 0.0)

        with mock.patch.object(dtorch.ConvTranspose2dEpilogue, "forward", wrong_after_leaky_relu):
            converted, records = dtorch.convert(model, (x,), precision="fp32", report=True)
        self.assertEqual([r.fused for r in records], [True, False, True, True])
        self.assertIn("kept unfused: with only this block fused, on example_inputs output 0's max |err| vs "
                      "float64 is", records[1].reason)
        self.assertIn("over the bound", records[1].reason)
        self.assertIsInstance(converted.get_submodule("3"), nn.ConvTranspose2d)
        self.assertEqual(sum(isinstance(m, dtorch.ConvTranspose2dEpilogue) for m in converted.modules()), 3)
        with torch.no_grad():
            self.assertTrue(torch.allclose(converted(x), model(x), rtol=1e-5, atol=1e-5))

    def test_blocks_failing_only_together_all_stay_unfused(self):
        class Parallel(nn.Module):  # two blocks whose errors add up in the output (within (0, 0.8))
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.ConvTranspose2d(4, 4, 3), nn.ConvTranspose2d(4, 4, 3)

            def forward(self, x):
                return torch.sigmoid(self.a(x)) * 0.4 + torch.sigmoid(self.b(x)) * 0.4

        torch.manual_seed(0)
        model = Parallel()
        x = torch.randn(1, 4, 6, 6)
        forward = dtorch.ConvTranspose2dEpilogue.forward
        error = 0.7 * dtorch.PRECISION_BOUNDS["fp32"]  # each block alone is within the bound, both are not
        with mock.patch.object(dtorch.ConvTranspose2dEpilogue, "forward", lambda self, x: forward(self, x) + error):
            converted, records = dtorch.convert(model, (x,), precision="fp32", report=True)
        self.assertEqual([r.name for r in records], ["a", "b"])
        self.assertFalse(any(r.fused for r in records))
        for record in records:
            self.assertIn("kept unfused: with every block fused, on example_inputs output 0's max |err|",
                          record.reason)
        self.assertFalse(any(isinstance(m, dtorch.ConvTranspose2dEpilogue) for m in converted.modules()))
        with torch.no_grad():
            self.assertTrue(torch.equal(converted(x), model(x)))

    def test_the_problems_a_converted_model_meets_are_what_the_tuner_takes(self):
        torch.manual_seed(0)
        converted = dtorch.convert(sequential_decoder())
        found = dtorch.problems(converted, torch.randn(2, 16, 5, 4), precision="tf32")
        self.assertEqual([(p["batch"], p["in_channels"], p["out_channels"], p["height"], p["width"], p["groups"],
                           p["epilogue"], p["precision"]) for p in found], [
            (2, 16, 12, 5, 4, 1, "relu", "tf32"), (2, 12, 8, 10, 8, 1, "leaky_relu:0.2", "tf32"),
            (2, 8, 8, 20, 16, 2, "mish,hardtanh:-2.0:2.0", "tf32"), (2, 8, 3, 20, 16, 1, "tanh", "tf32")])
        self.assertEqual(dtorch.problems(converted, (torch.randn(2, 16, 5, 4),)), dtorch.problems(
            converted, torch.randn(2, 16, 5, 4)))  # met twice, listed once; the input's values do not matter
        if not LIBRARY_DIR:
            return
        import deconvtune.db
        with tempfile.TemporaryDirectory() as folder:  # the tuner takes them as they are (simulated here)
            with open(os.path.join(folder, "p.jsonl"), "w") as f:
                f.writelines(json.dumps(p) + "\n" for p in found)
            result = subprocess.run([deconvtune.db.cli_path(), "autotune", "--simulate", "--problems",
                                     os.path.join(folder, "p.jsonl"), "--db", os.path.join(folder, "t.db"),
                                     "--max-trials", "2", "-q"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(len(deconvtune.db.winners(os.path.join(folder, "t.db"))), 4)

    def test_clear_errors(self):
        class Branchy(nn.Module):
            def forward(self, x):
                return x if x.sum() > 0 else -x

        with self.assertRaisesRegex(TypeError, "convert: torch.fx cannot trace Branchy"):
            dtorch.convert(Branchy())
        with self.assertRaisesRegex(TypeError, "model must be a torch.nn.Module"):
            dtorch.convert(lambda x: x)
        with self.assertRaisesRegex(ValueError, "precision must be None, 'fp32' or 'tf32'"):
            dtorch.convert(nn.ReLU(), precision="fp16")
        with self.assertRaisesRegex(TypeError, "example_inputs must be a tensor or a tuple"):
            dtorch.convert(nn.ReLU(), example_inputs=3)


FUSED_WITH_TIMES = re.compile(r"fused \(\d+\.\d{3} ms against \d+\.\d{3} ms unfused on the example inputs\)")
KEPT_UNFUSED_WITH_TIMES = re.compile(r"kept unfused: fused \d+\.\d{3} ms, unfused \d+\.\d{3} ms on the example inputs")


class FakeTimes:
    """Stands in for _convert._time_block: fused modules take fused_ms(module) ms, the unfused ops
    unfused_ms. Runs both on their input and keeps what they were given and what they computed, so a
    test can check each block was timed on its own input and that its two forms agree."""

    def __init__(self, fused_ms, unfused_ms=0.3):
        self.fused_ms, self.unfused_ms, self.calls = fused_ms, unfused_ms, []

    def __call__(self, fn, args, reps=20, warmup=3):
        fused = isinstance(fn, dtorch.ConvTranspose2dEpilogue)
        with torch.no_grad():
            self.calls.append((fused, tuple(args[0].shape), fn(*args)))
        return self.fused_ms(fn) if fused else self.unfused_ms


class KeepFaster(unittest.TestCase):
    """keep_faster on the CPU: _timed made to say the inputs are CUDA ones, _time_block a fake."""

    def convert_timed(self, model, x, times, **kwargs):
        with mock.patch.object(dconvert, "_timed", lambda example_inputs: True), \
                mock.patch.object(dconvert, "_time_block", times):
            return dtorch.convert(model, (x,), precision="fp32", report=True, **kwargs)

    def test_the_decision_keeps_fused_only_what_is_faster(self):
        decisions = dconvert._keep_faster({0: (0.412, 0.398), 1: (0.21, 0.4), 2: (0.3, 0.3)})
        self.assertEqual(decisions, {
            0: (False, "kept unfused: fused 0.412 ms, unfused 0.398 ms on the example inputs"),
            1: (True, "fused (0.210 ms against 0.400 ms unfused on the example inputs)"),
            2: (False, "kept unfused: fused 0.300 ms, unfused 0.300 ms on the example inputs")})  # equal: not faster

    def test_a_block_not_faster_fused_stays_unfused_and_the_report_gives_both_times(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        x = torch.randn(2, 16, 5, 4)
        times = FakeTimes(lambda m: 0.5 if m.epilogue.startswith("leaky_relu") else 0.1)
        converted, records = self.convert_timed(model, x, times)
        self.assertEqual([r.fused for r in records], [True, False, True, True])
        self.assertTrue(records[1].reason.startswith(
            "kept unfused: fused 0.500 ms, unfused 0.300 ms on the example inputs; the chain stops"), records[1].reason)
        for i in (0, 2, 3):
            self.assertTrue(records[i].reason.startswith(
                "fused (0.100 ms against 0.300 ms unfused on the example inputs); the chain stops"), records[i].reason)
        self.assertIsInstance(converted.get_submodule("3"), nn.ConvTranspose2d)
        self.assertEqual(sum(isinstance(m, dtorch.ConvTranspose2dEpilogue) for m in converted.modules()), 3)
        with torch.no_grad():
            self.assertTrue(torch.allclose(converted(x), model(x), rtol=1e-5, atol=1e-5))
        # Each block was timed on its own input, fused then unfused, and the two computed the same.
        shapes = [(2, 16, 5, 4), (2, 12, 10, 8), (2, 8, 20, 16), (2, 8, 20, 16)]
        self.assertEqual([(fused, shape) for fused, shape, _ in times.calls],
                         [(fused, shape) for shape in shapes for fused in (True, False)])
        for (_, _, fused_y), (_, _, unfused_y) in zip(times.calls[::2], times.calls[1::2]):
            self.assertTrue(torch.allclose(fused_y, unfused_y, rtol=1e-5, atol=1e-5))

    def test_functional_blocks_all_slower_fused_leave_the_model_as_it_was(self):
        torch.manual_seed(0)
        model = FunctionalDecoder().eval()
        x = torch.randn(2, 16, 3, 4)
        times = FakeTimes(lambda m: 1.0)
        converted, records = self.convert_timed(model, x, times)
        self.assertFalse(any(r.fused for r in records))
        by_name = records_by_name(records)
        for name in ("conv_transpose2d (F.conv_transpose2d, weight w1)", "up3"):
            self.assertRegex(by_name[name].reason, "^" + KEPT_UNFUSED_WITH_TIMES.pattern)
        self.assertTrue(by_name["up2"].reason.startswith("not fused: nothing to fuse"))  # not timed: never fused
        self.assertFalse(any(isinstance(m, dtorch.ConvTranspose2dEpilogue) for m in converted.modules()))
        with torch.no_grad():
            self.assertTrue(torch.equal(converted(x), model(x)))
        for (_, _, fused_y), (_, _, unfused_y) in zip(times.calls[::2], times.calls[1::2]):
            self.assertTrue(torch.allclose(fused_y, unfused_y, rtol=1e-5, atol=1e-5))

    def test_a_block_failing_its_check_is_not_timed_and_keeps_its_reason(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        x = torch.randn(2, 16, 5, 4)
        forward = dtorch.ConvTranspose2dEpilogue.forward

        def wrong_after_leaky_relu(self, x):
            return forward(self, x) + (1e-3 if self.epilogue.startswith("leaky_relu") else 0.0)

        times = FakeTimes(lambda m: 0.5 if m.epilogue.startswith("mish") else 0.1)
        with mock.patch.object(dtorch.ConvTranspose2dEpilogue, "forward", wrong_after_leaky_relu):
            converted, records = self.convert_timed(model, x, times)
        self.assertEqual([r.fused for r in records], [True, False, False, True])
        self.assertTrue(records[1].reason.startswith("kept unfused: with only this block fused"), records[1].reason)
        self.assertRegex(records[2].reason, "^" + KEPT_UNFUSED_WITH_TIMES.pattern)
        self.assertRegex(records[0].reason, "^" + FUSED_WITH_TIMES.pattern)
        self.assertEqual(len(times.calls), 6)  # blocks 0, 2 and 3, each fused and unfused
        with torch.no_grad():
            self.assertTrue(torch.allclose(converted(x), model(x), rtol=1e-5, atol=1e-5))

    def test_keep_faster_false_and_cpu_inputs_time_nothing(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        x = torch.randn(2, 16, 5, 4)
        times = FakeTimes(lambda m: 1.0)
        converted, records = self.convert_timed(model, x, times, keep_faster=False)
        self.assertEqual(times.calls, [])
        self.assertEqual([r.fused for r in records], [True] * 4)
        self.assertFalse(any("ms" in r.reason for r in records), records)
        with mock.patch.object(dconvert, "_time_block", times):  # CPU inputs: _timed says no
            converted, records = dtorch.convert(model, (x,), precision="fp32", report=True)
        self.assertEqual(times.calls, [])
        self.assertEqual([r.fused for r in records], [True] * 4)
        self.assertFalse(dconvert._timed((x, [x])))


class _Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


@unittest.skipIf(GPU_SKIP, GPU_SKIP)
class Gpu(unittest.TestCase):
    def test_decoders_match_the_original_within_the_bound_gradients_included(self):
        for precision in ("fp32", "tf32"):
            for make, shape in ((sequential_decoder, (4, 16, 9, 7)), (lambda: FunctionalDecoder().eval(),
                                                                       (4, 16, 6, 5))):
                torch.manual_seed(0)
                model = make().cuda()
                x = torch.randn(*shape, device="cuda", requires_grad=True)
                converted, records = dtorch.convert(model, (x.detach(),), precision=precision, report=True)
                self.assertTrue(any(r.fused for r in records), records)
                grad_y = torch.randn_like(model(x))
                (got,) = torch.autograd.grad(converted(x), x, grad_y)
                (expected,) = torch.autograd.grad(model(x), x, grad_y)
                tolerance = 1e-3 if precision == "fp32" else 3e-2
                self.assertTrue(torch.allclose(got, expected, rtol=tolerance, atol=tolerance), precision)

    def test_a_decoder_converted_on_cuda_inputs_reports_both_times_for_every_block(self):
        torch.manual_seed(0)
        model = randomize_batchnorms(nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(16, 3, 4, 2, 1), nn.Tanh())).eval().cuda()
        x = torch.randn(8, 64, 8, 8, device="cuda")
        converted, records = dtorch.convert(model, (x,), precision="fp32", report=True)
        self.assertEqual(len(records), 3)
        for record in records:
            pattern = FUSED_WITH_TIMES if record.fused else KEPT_UNFUSED_WITH_TIMES
            self.assertRegex(record.reason, "^" + pattern.pattern)
        with torch.no_grad():
            self.assertTrue(torch.allclose(converted(x), model(x), rtol=1e-3, atol=1e-3))


if __name__ == "__main__":
    unittest.main(verbosity=2)
