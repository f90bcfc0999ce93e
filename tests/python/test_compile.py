"""The torch.compile backend (its graph pass, rewrite()) and deconvtune.torch.autotune.

CPU part (Debian's PyTorch 1.13 under /usr/bin/python3 is enough): rewrite() on graphs
torch.fx.symbolic_trace made of multi-block decoders (nn.Sequential, functional calls) and on a
graph shaped as torch.compile captures one (weights and batch-norm tensors as graph inputs,
F.batch_norm, the builtins of the functional forms, in-place ops): every block fused, the same
records as convert() (one matcher), outputs within the precision's bound of float64, gradients
reaching the model's own parameters through the in-graph folding. autotune(): the problem shapes
it records, the problems file, the tuner driven end to end (simulated: --simulate), the CLI's
exit codes as exceptions (a stand-in CLI), and on this machine without a GPU the real CLI's
refusal. torch >= 2 part (skipped, saying why, on older PyTorch): torch.compile(model,
backend="deconvtune") on the CPU path, dynamic batch without a recompile per call; GPU part
(skipped without CUDA): the same on the GPU within the bound.

Environment: DECONVTUNE_TEST_LIBRARY_DIR (the library's folder, where the CLI is found beside it;
empty: the tests that run the real CLI are skipped), DECONVTUNE_DB (the tests' DB path).
"""
import contextlib
import copy
import io
import json
import operator
import os
import stat
import tempfile
import unittest
from unittest import mock

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import deconvtune
import deconvtune.torch as dtorch
from deconvtune import _autotune
from test_convert import FunctionalDecoder, sequential_decoder

LIBRARY_DIR = os.environ.get("DECONVTUNE_TEST_LIBRARY_DIR", "")
if LIBRARY_DIR:
    os.environ["DECONVTUNE_LIBRARY_PATH"] = LIBRARY_DIR
os.environ.setdefault("DECONVTUNE_DB", os.path.join(tempfile.mkdtemp(prefix="deconvtune-compile-test-"), "t.db"))
TORCH_MAJOR = int(torch.__version__.split(".")[0])
COMPILE_SKIP = ("" if TORCH_MAJOR >= 2 and hasattr(torch, "compile") else
                f"needs torch >= 2 (torch.compile); this is torch {torch.__version__}")
GPU_SKIP = ("needs a CUDA GPU and the library" if not (torch.cuda.is_available() and LIBRARY_DIR) else
            "run by CTest's Api.PythonTorchGpu" if os.environ.get("DECONVTUNE_TEST_GPU") == "0" else "")
CLI_SKIP = "" if LIBRARY_DIR else "no library (and so no CLI beside it) in this build"


def within_bound(test, got, model, inputs, precision="fp32"):
    """got (the rewritten model's output) is within the precision's bound of the float64 model,
    beyond the float32 model's own error, as convert() checks it."""
    with torch.no_grad():
        exact = copy.deepcopy(model).double()(*(t.double() for t in inputs))
        own = (model(*inputs).double() - exact).abs().max().item()
    error = (got.detach().double() - exact).abs().max().item()
    allowed = own + dtorch.PRECISION_BOUNDS[precision] * max(1.0, exact.abs().max().item())
    test.assertLessEqual(error, allowed)


def block_calls(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is dtorch._graph_block]


class CapturedStyle(nn.Module):
    """Forward as torch.compile captures a model: the parameters and batch-norm statistics are
    graph inputs, modules are inlined into functional calls and their builtins, some in place."""

    def forward(self, x, w1, b1, mean1, var1, gamma1, beta1, w2, mean2, var2):
        y = torch.conv_transpose2d(x, w1, b1, (2, 2), (1, 1), (1, 1), 1, (1, 1))
        y = F.batch_norm(y, mean1, var1, gamma1, beta1, False, 0.1, 1e-5)
        y = F.relu(y, inplace=True)
        y = torch._C._nn.hardtanh(y, -0.5, 0.75)
        y = operator.mul(y, 2.0)
        z = torch.conv_transpose2d(y, w2, None, (1, 1), (1, 1), (0, 0), 2, (1, 1))
        z = torch.batch_norm(z, None, None, mean2, var2, False, 0.1, 1e-3, False)
        return torch.sigmoid(torch._C._nn.leaky_relu_(z, 0.1))


def captured_inputs():
    torch.manual_seed(0)
    return [torch.randn(2, 8, 5, 4), torch.randn(8, 6, 3, 3) * 0.3, torch.randn(6) * 0.1, torch.randn(6) * 0.2,
            torch.rand(6) + 0.5, torch.rand(6) + 0.5, torch.randn(6) * 0.2, torch.randn(6, 3, 3, 3) * 0.3,
            torch.randn(6) * 0.2, torch.rand(6) + 0.5]


class Rewrite(unittest.TestCase):
    def test_a_sequential_decoder_is_rewritten_block_by_block(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        x = torch.randn(2, 16, 5, 4)
        gm, records = dtorch.rewrite(torch.fx.symbolic_trace(copy.deepcopy(model)), precision="fp32", report=True)
        self.assertEqual([(r.name, r.fused, r.batchnorm, r.epilogue) for r in records], [
            ("0", True, "1", "relu"), ("3", True, "4", "leaky_relu:0.2"),
            ("6", True, "7", "mish,hardtanh:-2.0:2.0"), ("10", True, "", "tanh")])
        self.assertEqual(len(block_calls(gm)), 4)
        self.assertFalse([n for n in gm.graph.nodes if n.op == "call_module"])  # no conv, BN or activation left
        with torch.no_grad():
            within_bound(self, gm(x), model, (x,))
        x = torch.randn(5, 16, 5, 4)
        with torch.no_grad():  # any batch: nothing in the graph depends on it
            within_bound(self, gm(x), model, (x,))

    def test_the_same_records_as_convert(self):
        torch.manual_seed(0)
        model = FunctionalDecoder().eval()
        x = torch.randn(2, 16, 3, 4)
        _, expected = dtorch.convert(model, report=True)
        gm, records = dtorch.rewrite(torch.fx.symbolic_trace(copy.deepcopy(model)), report=True)
        self.assertEqual(records, expected)  # fused or not, and why: the one matcher
        self.assertEqual(len(block_calls(gm)), sum(r.fused for r in records))
        with torch.no_grad():
            within_bound(self, gm(x), model, (x,))

    def test_a_graph_as_torch_compile_captures_it(self):
        inputs = captured_inputs()
        model = CapturedStyle()
        gm, records = dtorch.rewrite(torch.fx.symbolic_trace(CapturedStyle()), precision="fp32", report=True)
        self.assertEqual([(r.fused, r.epilogue) for r in records],
                         [(True, "relu,hardtanh:-0.5:0.75,mul:2.0"), (True, "leaky_relu:0.1,sigmoid")])
        self.assertTrue(records[0].batchnorm.startswith("batch_norm (torch.nn.functional.batch_norm)"),
                        records[0].batchnorm)
        self.assertTrue(records[1].batchnorm.startswith("batch_norm_1 (torch.batch_norm)"), records[1].batchnorm)
        self.assertEqual(len(block_calls(gm)), 2)
        self.assertFalse([n for n in gm.graph.nodes if n.target in (torch.conv_transpose2d, F.batch_norm)])
        within_bound(self, gm(*[t.clone() for t in inputs]), model, [t.clone() for t in inputs])
        # It trains: the gradients reach the graph's own weights and affine parameters through the
        # folding done in the graph, as the unfused graph's do.
        leaves = [t.clone().requires_grad_(i in (0, 1, 2, 5, 6, 7)) for i, t in enumerate(inputs)]
        grad_y = torch.randn_like(model(*[t.clone() for t in inputs]))
        wrt = [leaves[i] for i in (0, 1, 2, 5, 6, 7)]  # x, w1, b1, gamma1, beta1, w2
        got = torch.autograd.grad(gm(*leaves), wrt, grad_y)
        expected = torch.autograd.grad(model(*leaves), wrt, grad_y)
        for g, e in zip(got, expected):
            self.assertTrue(torch.allclose(g, e, rtol=1e-4, atol=1e-5), (g - e).abs().max())

    def test_what_stays_unfused_in_a_captured_graph(self):
        def training_bn(x, w, mean, var):
            return F.relu(F.batch_norm(torch.conv_transpose2d(x, w), mean, var, None, None, True, 0.1, 1e-5))

        graph = torch.fx.Graph()  # a stride computed in forward
        x, w, s = graph.placeholder("x"), graph.placeholder("w"), graph.placeholder("s")
        graph.output(graph.call_function(F.relu, (graph.call_function(torch.conv_transpose2d, (x, w, None, s)),)))
        strided = torch.fx.GraphModule(nn.Module(), graph)
        gm, (record,) = dtorch.rewrite(torch.fx.symbolic_trace(training_bn), report=True)
        self.assertFalse(record.fused)
        self.assertIn("cannot be folded: it is in training mode (training=True", record.reason)
        self.assertFalse(block_calls(gm))
        gm, (record,) = dtorch.rewrite(strided, report=True)
        self.assertFalse(record.fused)
        self.assertIn("computed in forward, not a constant", record.reason)
        # convert() takes module attributes only: a weight passed to forward stays unfused there.
        _, (record,) = dtorch.convert(_WeightArgument(), report=True)
        self.assertIn("its weight is computed in forward, not a module attribute", record.reason)

    def test_clear_errors(self):
        with self.assertRaisesRegex(TypeError, "gm must be a torch.fx.GraphModule"):
            dtorch.rewrite(nn.ReLU())
        with self.assertRaisesRegex(ValueError, "precision must be None, 'fp32' or 'tf32'"):
            dtorch.rewrite(torch.fx.symbolic_trace(nn.ReLU()), precision="fp16")

    @unittest.skipUnless(COMPILE_SKIP, "PyTorch has torch.compile here")
    def test_enable_says_what_this_pytorch_lacks(self):
        with self.assertRaisesRegex(RuntimeError, "torch.compile needs PyTorch >= 2, this is"):
            dtorch.enable()


class Reports(unittest.TestCase):
    """compile_reports(): one report per graph, however often dynamo ran the backend for it."""

    def backend_runs(self, graph_ids):
        from deconvtune import _compile
        before = len(dtorch.compile_reports())
        for graph_id in graph_ids:
            with mock.patch.object(_compile, "_graph_id", return_value=graph_id):
                dtorch.backend(torch.fx.symbolic_trace(sequential_decoder()), [], options={"inductor": False})
        return dtorch.compile_reports()[before:]

    def test_a_restarted_attempt_replaces_the_abandoned_one(self):
        reports = self.backend_runs([((0, 0), False), ((0, 0), True), ((0, 1), False), ((0, 1), True)])
        self.assertEqual(len(reports), 2)
        self.assertEqual([len(r) for r in reports], [4, 4])  # each a whole graph's records

    def test_graphs_are_counted_apart(self):
        # A first attempt is a new graph even where ids repeat (dynamo's reset() starts them over),
        # and so is every call where this PyTorch gives no ids.
        self.assertEqual(len(self.backend_runs([((0, 0), False), ((0, 0), False)])), 2)
        self.assertEqual(len(self.backend_runs([(None, False), (None, True)])), 2)
        self.assertEqual(len(self.backend_runs([((0, 0), False), ((1, 0), True)])), 2)


class _WeightArgument(nn.Module):
    def forward(self, x, w):
        return F.relu(F.conv_transpose2d(x, w))


def fake_cli(folder, code, message):
    """A stand-in for the deconvtune CLI that prints `message` on stderr and exits `code`."""
    path = os.path.join(folder, "deconvtune")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho {json.dumps(message)} >&2\nexit {code}\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


class Autotune(unittest.TestCase):
    def test_it_records_the_problems_the_blocks_meet(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        found = _autotune._record_problems(dtorch.convert(model), (torch.randn(3, 16, 5, 4),), "tf32")
        self.assertEqual([(names, p["batch"], p["in_channels"], p["out_channels"], p["height"], p["width"],
                           p["groups"], p["bias"], p["epilogue"], p["precision"]) for names, p in found], [
            (["0"], 3, 16, 12, 5, 4, 1, True, "relu", "tf32"),  # the folded BatchNorm gives it a bias
            (["3"], 3, 12, 8, 10, 8, 1, True, "leaky_relu:0.2", "tf32"),
            (["6"], 3, 8, 8, 20, 16, 2, True, "mish,hardtanh:-2.0:2.0", "tf32"),
            (["10"], 3, 8, 3, 20, 16, 1, True, "tanh", "tf32")])
        self.assertEqual([p for _, p in found], dtorch.problems(dtorch.convert(model), torch.randn(3, 16, 5, 4),
                                                                precision="tf32"))

        class Twice(nn.Module):  # two blocks meeting the same problem: listed once, under both names
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.ConvTranspose2d(4, 4, 3, 1, 1), nn.ConvTranspose2d(4, 4, 3, 1, 1)

            def forward(self, x):
                return torch.relu(self.b(torch.relu(self.a(x))))

        found = _autotune._record_problems(dtorch.convert(Twice()), (torch.randn(1, 4, 6, 6),), None)
        self.assertEqual([names for names, _ in found], [["a", "b"]])

    def test_the_clis_exit_codes_become_exceptions_with_its_message(self):
        model, x = sequential_decoder(), torch.randn(1, 16, 5, 4)
        cases = [(3, "deconvtune: error: no CUDA driver (autotune measures on a GPU)", dtorch.AutotuneError,
                  "found no GPU \\(exit 3\\): deconvtune: error: no CUDA driver"),
                 (2, "deconvtune: error: problems.jsonl:1: bad", dtorch.AutotuneError, "refused its input \\(exit 2\\)"),
                 (130, "interrupted: 3 measured", dtorch.AutotuneError, "interrupted \\(exit 130\\)"),
                 (1, "deconvtune: error: the DB is corrupt", dtorch.AutotuneError, "failed \\(exit 1\\): .*corrupt")]
        with tempfile.TemporaryDirectory() as folder:
            for code, message, error, pattern in cases:
                with mock.patch.dict(os.environ, {"DECONVTUNE_WORKER": fake_cli(folder, code, message)}):
                    with contextlib.redirect_stderr(io.StringIO()) as err:
                        with self.assertRaisesRegex(error, pattern) as caught:
                            dtorch.autotune(model, x)
                    self.assertIn(message, err.getvalue())  # passed through as it came
                self.assertEqual(caught.exception.exit_code, code)
                self.assertEqual(isinstance(caught.exception, deconvtune.NoGpuError), code == 3)

    def test_clear_errors_and_nothing_to_tune(self):
        with self.assertRaisesRegex(TypeError, "model must be a torch.nn.Module"):
            dtorch.autotune(lambda x: x, torch.randn(1))
        with self.assertRaisesRegex(TypeError, "example_inputs must be a tensor or a tuple"):
            dtorch.autotune(nn.ReLU(), 3)
        with self.assertRaisesRegex(ValueError, "budget_s must be a number of seconds"):
            dtorch.autotune(nn.ReLU(), torch.randn(1), budget_s=-1)
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(dtorch.autotune(nn.Sequential(nn.ReLU()), torch.randn(1)), [])
        self.assertIn("no fused ConvTranspose2d block", err.getvalue())

    @unittest.skipIf(CLI_SKIP, CLI_SKIP)
    def test_it_drives_the_tuner_end_to_end_simulated(self):
        torch.manual_seed(0)
        model = sequential_decoder()  # not converted: autotune converts it
        x = torch.randn(2, 16, 5, 4)
        with tempfile.TemporaryDirectory() as folder:
            db, problems = os.path.join(folder, "t.db"), os.path.join(folder, "p.jsonl")
            with contextlib.redirect_stderr(io.StringIO()) as err:
                results = dtorch.autotune(model, (x,), budget_s=60, precision="fp32", db=db, max_trials=2,
                                          problems_file=problems, simulate=True)
            progress = err.getvalue()
            self.assertIn("tuning 4 problem(s)", progress)
            self.assertIn("(simulated)", progress)
            self.assertEqual([r.name for r in results], ["0", "3", "6", "10"])
            for r in results:
                self.assertTrue(r.winner, r)
                self.assertIsInstance(r.winner_ms, float)
                self.assertGreater(r.winner_ms, 0)
                self.assertEqual(r.reason, "")
                self.assertTrue(r.problem_key.startswith("convT2d:n2:"), r.problem_key)
                self.assertGreaterEqual(r.trials, 1)
            self.assertEqual([(r.problem["in_channels"], r.problem["height"], r.problem["epilogue"]) for r in results],
                             [(16, 5, "relu"), (12, 10, "leaky_relu:0.2"), (8, 20, "mish,hardtanh:-2.0:2.0"),
                              (8, 20, "tanh")])
            with open(problems) as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual([line["name"] for line in lines], ["0", "3", "6", "10"])
            import deconvtune.db
            winners = {w.problem_key: w.config for w in deconvtune.db.winners(db)}
            self.assertEqual(winners, {r.problem_key: r.winner for r in results})
            # Again: what the DB holds is not measured again, the winners can only get faster; quiet
            # passes -q (no progress).
            with contextlib.redirect_stderr(io.StringIO()) as err:
                again = dtorch.autotune(model, (x,), precision="fp32", db=db, max_trials=2, progress=False,
                                        simulate=True)
            self.assertEqual([r.problem_key for r in again], [r.problem_key for r in results])
            for first, second in zip(results, again):
                self.assertGreaterEqual(second.skipped, first.trials, second)
                self.assertLessEqual(second.winner_ms, first.winner_ms)
            self.assertNotIn("tuning 4 problem(s)", err.getvalue())

    @unittest.skipIf(CLI_SKIP or torch.cuda.is_available(), CLI_SKIP or "this machine has a GPU to tune on")
    def test_without_a_gpu_the_clis_refusal_is_raised(self):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as folder:
            with contextlib.redirect_stderr(io.StringIO()):
                with self.assertRaises(deconvtune.NoGpuError) as caught:
                    dtorch.autotune(sequential_decoder(), torch.randn(1, 16, 5, 4), db=os.path.join(folder, "t.db"))
        self.assertIn("autotune measures on a GPU", str(caught.exception))
        self.assertEqual(caught.exception.exit_code, 3)


@unittest.skipIf(COMPILE_SKIP, COMPILE_SKIP)
class Compile(unittest.TestCase):
    """torch.compile with the backend, on the CPU path (Inductor's CPU code for the rest)."""

    def setUp(self):
        torch._dynamo.reset()  # each test's compiles counted from none (and below the recompile limit)

    def compiled_matches(self, model, shapes, device="cpu", precision="fp32", **compile_kwargs):
        dtorch.enable()
        before = len(dtorch.compile_reports())
        compiled = torch.compile(model, backend="deconvtune", options={"precision": precision}, **compile_kwargs)
        for shape in shapes:
            x = torch.randn(*shape, device=device)
            with torch.no_grad():
                within_bound(self, compiled(x), model, (x,), precision)
        return dtorch.compile_reports()[before:]

    def test_a_decoder_compiles_with_every_block_fused(self):
        torch.manual_seed(0)
        reports = self.compiled_matches(sequential_decoder(), [(2, 16, 5, 4)])
        self.assertEqual(len(reports), 1)
        self.assertEqual([(r.fused, r.epilogue) for r in reports[0]], [
            (True, "relu"), (True, "leaky_relu:0.2"), (True, "mish,hardtanh:-2.0:2.0"), (True, "tanh")])

    def test_the_functional_decoder_fuses_what_convert_fuses(self):
        torch.manual_seed(0)
        model = FunctionalDecoder().eval()
        _, expected = dtorch.convert(model, report=True)
        (records,) = self.compiled_matches(model, [(2, 16, 3, 4)])
        # up5 is called with output_size: convert() leaves it (a shape chosen per call), but dynamo
        # traces the module's forward and its graph holds the output_padding that size gave, a
        # constant its shape guards stand behind, so the backend fuses it.
        self.assertFalse(expected[-1].fused)
        self.assertIn("output_size", expected[-1].reason)
        self.assertEqual([(r.fused, r.epilogue) for r in records],
                         [(r.fused, r.epilogue) for r in expected[:-1]] + [(True, "tanh")])

    def test_dynamic_batch_compiles_at_most_twice(self):
        torch.manual_seed(0)
        reports = self.compiled_matches(sequential_decoder(), [(n, 16, 5, 4) for n in (2, 3, 4, 5, 7, 8)])
        self.assertLessEqual(len(reports), 2)  # the first size, then one graph for a symbolic batch
        torch._dynamo.reset()  # dynamo's memory of the sizes above (automatic dynamic) starts over
        torch.manual_seed(0)
        reports = self.compiled_matches(sequential_decoder(), [(n, 16, 5, 4) for n in (2, 3, 4, 5)], dynamic=True)
        # One graph (PyTorch 2.11 restarts its analysis once to specialise the batch norms' float
        # eps and momentum; compile_reports() keeps the attempt that stands).
        self.assertEqual(len(reports), 1, torch._dynamo.utils.counters["recompiles"])

    def test_the_backend_as_a_callable_and_without_inductor(self):
        torch.manual_seed(0)
        model = sequential_decoder()
        x = torch.randn(2, 16, 5, 4)
        for backend in (dtorch.backend, lambda gm, inputs: dtorch.backend(gm, inputs, options={"inductor": False})):
            with torch.no_grad():
                within_bound(self, torch.compile(model, backend=backend)(x), model, (x,), "tf32")


@unittest.skipIf(COMPILE_SKIP or GPU_SKIP, COMPILE_SKIP or GPU_SKIP)
class Gpu(unittest.TestCase):
    def setUp(self):
        torch._dynamo.reset()

    def test_decoders_compile_on_the_gpu_within_the_bound_with_dynamic_batch(self):
        for precision in ("fp32", "tf32"):
            torch.manual_seed(0)
            model = sequential_decoder().cuda()
            before = len(dtorch.compile_reports())
            dtorch.enable()
            compiled = torch.compile(model, backend="deconvtune", options={"precision": precision})
            for n in (4, 5, 6, 9):
                x = torch.randn(n, 16, 9, 7, device="cuda")
                with torch.no_grad():
                    within_bound(self, compiled(x), model, (x,), precision)
            reports = dtorch.compile_reports()[before:]
            self.assertLessEqual(len(reports), 2)
            self.assertTrue(all(r.fused for r in reports[-1]), reports[-1])

    def test_it_trains_through_torch_compile(self):
        torch.manual_seed(0)
        model = sequential_decoder().cuda()
        x = torch.randn(4, 16, 9, 7, device="cuda", requires_grad=True)
        compiled = torch.compile(model, backend=dtorch.backend, options={"precision": "fp32"})
        grad_y = torch.randn_like(model(x))
        got = torch.autograd.grad(compiled(x), [x, model[0].weight, model[1].weight], grad_y)
        expected = torch.autograd.grad(model(x), [x, model[0].weight, model[1].weight], grad_y)
        for g, e in zip(got, expected):
            self.assertTrue(torch.allclose(g, e, rtol=1e-3, atol=1e-3), (g - e).abs().max())


if __name__ == "__main__":
    unittest.main(verbosity=2)
