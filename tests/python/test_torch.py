"""deconvtune.torch: the fused module, its functional form, the CPU path and training.

CPU part (any PyTorch, e.g. Debian's 1.13 under /usr/bin/python3): the constructor is
nn.ConvTranspose2d's, from_model's weights, epilogue parsing and its errors, the problem the module
describes (accepted by the C library's parser, output shapes as PyTorch computes them), precision
following allow_tf32, the CPU path against PyTorch's ops, gradcheck in float64 over several
epilogue chains, gradients equal to the unfused model's, torch.fx tracing, clear errors. GPU part
(skipped without CUDA): outputs vs the Model in both precisions, gradients vs the unfused model,
torch's current stream, torch.compile through the custom op, device errors.

Environment: DECONVTUNE_REFERENCE_DIR (folder of seed_model.py), DECONVTUNE_TEST_LIBRARY_DIR (the
library's folder; empty: checks that load it are skipped), DECONVTUNE_DB (the tests' DB path).
"""
import copy
import inspect
import json
import os
import sys
import tempfile
import unittest
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.environ.get("DECONVTUNE_REFERENCE_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                                          "..", "bench", "reference")))
import seed_model  # noqa: E402

import deconvtune  # noqa: E402
import deconvtune.torch as dtorch  # noqa: E402

LIBRARY_DIR = os.environ.get("DECONVTUNE_TEST_LIBRARY_DIR", "")
if LIBRARY_DIR:
    os.environ["DECONVTUNE_LIBRARY_PATH"] = LIBRARY_DIR
DB_DIR = tempfile.mkdtemp(prefix="deconvtune-torch-test-")
os.environ.setdefault("DECONVTUNE_DB", os.path.join(DB_DIR, "tuning.db"))
HAS_CUDA = torch.cuda.is_available()
# CTest runs the GPU cases as their own test (Api.PythonTorchGpu, reported skipped without a GPU)
# and sets DECONVTUNE_TEST_GPU=0 for the CPU run; run by hand, a file runs both.
GPU_SKIP = ("needs a CUDA GPU and the library" if not (torch.cuda.is_available() and LIBRARY_DIR) else
            "run by CTest's Api.PythonTorchGpu" if os.environ.get("DECONVTUNE_TEST_GPU") == "0" else "")
SMALL_SEED = [16, 8, 3, 2, 1, 1, 0.5, 2.0]  # the seed Model's arguments, fewer channels
SEED_CHAIN = "mish,add:0.5,hardtanh:-1:1,mul:2"
# Chains for the gradient checks; no hardtanh/clamp bound or relu kink lies within gradcheck's step
# of an output on the inputs used (random values: the chance is ~1e-4 per check).
CHAINS = [SEED_CHAIN, "gelu", "leaky_relu:0.1,add:-0.25", "softplus,tanh", "silu,mul:1.5,sigmoid",
          "relu,clamp:-0.5:0.5", "mish,softplus,mul:-2"]
# Each chain as the nn modules an unfused model would use.
MODULES = {"mish": lambda: nn.Mish(), "gelu": lambda: nn.GELU(), "softplus": lambda: nn.Softplus(),
           "tanh": lambda: nn.Tanh(), "silu": lambda: nn.SiLU(), "sigmoid": lambda: nn.Sigmoid(),
           "relu": lambda: nn.ReLU(), "leaky_relu": lambda s: nn.LeakyReLU(s),
           "hardtanh": lambda lo, hi: nn.Hardtanh(lo, hi)}


class Scalar(nn.Module):
    def __init__(self, op, value):
        super().__init__()
        self.op, self.value = op, value

    def forward(self, x):
        return x + self.value if self.op == "add" else x * self.value if self.op == "mul" else torch.clamp(
            x, *self.value)


def unfused(conv, chain):
    """nn.Sequential(conv, the chain as separate modules): what the fused module must compute."""
    layers = [conv]
    for name, *args in dtorch.parse_epilogue(chain):
        layers.append(Scalar(name, args if name == "clamp" else args[0]) if name in ("add", "mul", "clamp")
                      else MODULES[name](*args))
    return nn.Sequential(*layers)


def reference_output(model, x, precision):
    """The user's Model on x with cuDNN's TF32 set as `precision` says, in float64 as well."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        with torch.no_grad():
            return model(x), model.double()(x.double())
    finally:
        model.float()
        torch.backends.cudnn.allow_tf32 = saved


class Construction(unittest.TestCase):
    def test_the_signature_is_nn_conv_transpose2ds_then_keywords(self):
        ours = inspect.signature(dtorch.ConvTranspose2dEpilogue.__init__).parameters
        theirs = inspect.signature(nn.ConvTranspose2d.__init__).parameters
        positional = [(p.name, p.default) for p in ours.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
        self.assertEqual(positional, [(p.name, p.default) for p in theirs.values()
                                      if p.kind == p.POSITIONAL_OR_KEYWORD])
        keyword_only = [p.name for p in ours.values() if p.kind == p.KEYWORD_ONLY]
        self.assertEqual(keyword_only[:2], ["epilogue", "precision"])

    def test_positional_arguments_land_where_nn_conv_transpose2d_puts_them(self):
        args = (16, 8, (3, 5), (2, 1), (1, 2), (1, 0), 4, False, (1, 2))
        block = dtorch.ConvTranspose2dEpilogue(*args, epilogue="relu")
        expected = nn.ConvTranspose2d(*args)
        for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding",
                          "groups", "dilation", "padding_mode"):
            self.assertEqual(getattr(block.conv_transpose, attribute), getattr(expected, attribute), attribute)
        self.assertIsNone(block.conv_transpose.bias)
        self.assertEqual(block.conv_transpose.weight.shape, expected.weight.shape)
        block = dtorch.ConvTranspose2dEpilogue(4, 4, 3, 1, 0, 0, 1, True, 1, "zeros", "cpu", torch.float64)
        self.assertEqual(block.conv_transpose.weight.dtype, torch.float64)
        self.assertEqual(block.epilogue, "")  # no chain unless given: a plain ConvTranspose2d

    def test_the_seed_models_init_inputs_are_refused_with_the_way_out(self):
        with self.assertRaises(ValueError) as caught:
            dtorch.ConvTranspose2dEpilogue(*seed_model.get_init_inputs())
        self.assertIn("groups must be an int >= 1, got 0.5", str(caught.exception))
        self.assertIn("from_model", str(caught.exception))
        with self.assertRaisesRegex(ValueError, "bias must be True or False, got 2.0"):
            dtorch.ConvTranspose2dEpilogue(16, 8, 3, 2, 1, 1, 1, 2.0)

    def test_from_model_has_the_models_parameters_and_chain(self):
        model = seed_model.Model(*seed_model.get_init_inputs())
        block = dtorch.ConvTranspose2dEpilogue.from_model(model)
        self.assertEqual({k: v.shape for k, v in block.state_dict().items()},
                         {k: v.shape for k, v in model.state_dict().items()})
        self.assertEqual(block.epilogue, "mish,add:0.5,hardtanh:-1.0:1.0,mul:2.0")
        self.assertEqual(block.epilogue, dtorch.epilogue_text(dtorch.seed_epilogue(0.5, 2)))
        block.load_state_dict(model.state_dict())  # state dicts load either way
        model.load_state_dict(block.state_dict())

    def test_from_model_copies_the_weights(self):
        model = seed_model.Model(*SMALL_SEED[:6], 0.25, 3)
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        self.assertTrue(torch.equal(block.conv_transpose.weight, model.conv_transpose.weight))
        self.assertTrue(torch.equal(block.conv_transpose.bias, model.conv_transpose.bias))
        self.assertNotEqual(block.conv_transpose.weight.data_ptr(), model.conv_transpose.weight.data_ptr())
        self.assertEqual(block.epilogue, "mish,add:0.25,hardtanh:-1.0:1.0,mul:3.0")
        self.assertEqual(block.precision, "fp32")

    def test_from_model_refuses_other_models(self):
        with self.assertRaisesRegex(TypeError, "conv_transpose"):
            dtorch.ConvTranspose2dEpilogue.from_model(torch.nn.Linear(2, 2))
        model = seed_model.Model(*SMALL_SEED)
        del model.scale
        with self.assertRaisesRegex(TypeError, "scale"):
            dtorch.ConvTranspose2dEpilogue.from_model(model)

    def test_bad_options(self):
        with self.assertRaisesRegex(ValueError, "precision"):
            dtorch.ConvTranspose2dEpilogue(16, 8, 3, precision="bf16")
        with self.assertRaisesRegex(ValueError, "on_miss"):
            dtorch.ConvTranspose2dEpilogue(16, 8, 3, on_miss="maybe")
        with self.assertRaisesRegex(ValueError, "padding_mode must be 'zeros'"):
            dtorch.ConvTranspose2dEpilogue(16, 8, 3, padding_mode="reflect")
        with self.assertRaisesRegex(ValueError, "epilogue op 'elu' is unknown"):
            dtorch.ConvTranspose2dEpilogue(16, 8, 3, epilogue="relu,elu")

    def test_precision_follows_allow_tf32_unless_given(self):
        block = dtorch.ConvTranspose2dEpilogue(16, 8, 3)
        saved = torch.backends.cudnn.allow_tf32
        try:
            torch.backends.cudnn.allow_tf32 = True
            self.assertEqual(block.current_precision(), "tf32")
            torch.backends.cudnn.allow_tf32 = False
            self.assertEqual(block.current_precision(), "fp32")
            self.assertEqual(dtorch.ConvTranspose2dEpilogue(16, 8, 3, precision="tf32").current_precision(), "tf32")
        finally:
            torch.backends.cudnn.allow_tf32 = saved

    def test_problem_shapes_are_pytorchs(self):
        for kwargs in ({}, {"groups": 4}, {"dilation": (1, 2)}, {"bias": False}):
            block = dtorch.ConvTranspose2dEpilogue(16, 8, (3, 5), (2, 1), (1, 2), (1, 0), epilogue=SEED_CHAIN,
                                                   **kwargs)
            x = torch.rand(2, 16, 7, 9)
            spec = json.loads(block.problem(x.shape, "fp32"))
            with torch.no_grad():
                expected = list(block.conv_transpose(x).shape)
            self.assertEqual(dtorch.output_shape(spec), expected, kwargs)
            self.assertEqual(spec["bias"], kwargs.get("bias", True))
            self.assertEqual(spec["epilogue"], "mish,add:0.5,hardtanh:-1.0:1.0,mul:2.0")

    @unittest.skipUnless(LIBRARY_DIR, "no library to load in this build")
    def test_the_library_accepts_the_modules_problem_with_every_op(self):
        engine = deconvtune.Engine()
        every_op = "mish,add:0.5,mul:2,hardtanh:-1:1,relu,leaky_relu:0.01,gelu,silu,sigmoid,tanh,softplus,clamp:-3:3"
        for epilogue in (SEED_CHAIN, every_op, ""):
            block = dtorch.ConvTranspose2dEpilogue(16, 8, 3, 2, 1, 1, groups=2, dilation=2, epilogue=epilogue)
            for dtype, layout in (("float32", "NCHW"), ("bfloat16", "NHWC"), ("float16", "NCHW")):
                problem = block.problem((2, 16, 8, 8), "tf32", dtype, layout)
                try:
                    plan = engine.plan(problem)
                except deconvtune.NoGpuError:
                    continue  # the problem parsed and validated; only the GPU is missing
                self.assertEqual(list(plan.output_shape), dtorch.output_shape(json.loads(problem)))

    def test_the_problem_names_the_inputs_dtype_and_layout(self):
        block = dtorch.ConvTranspose2dEpilogue(16, 8, 3, 2, 1, 1)
        spec = json.loads(block.problem((2, 16, 8, 8), "fp32"))
        self.assertEqual((spec["dtype"], spec["layout"]), ("float32", "NCHW"))
        spec = json.loads(block.problem((2, 16, 8, 8), "fp32", "bfloat16", "NHWC"))
        self.assertEqual((spec["dtype"], spec["layout"]), ("bfloat16", "NHWC"))
        self.assertEqual(dtorch.DTYPES, {torch.float32: "float32", torch.bfloat16: "bfloat16",
                                         torch.float16: "float16"})
        x = torch.rand(2, 16, 8, 8)
        self.assertEqual(dtorch._layout(x), "NCHW")
        self.assertEqual(dtorch._layout(x.to(memory_format=torch.channels_last)), "NHWC")
        self.assertEqual(dtorch._layout(x.transpose(2, 3)), None)
        self.assertEqual(dtorch._layout(torch.rand(2, 1, 8, 8).to(memory_format=torch.channels_last)), "NCHW")
        found = dtorch.problems(nn.Sequential(block), (x.to(memory_format=torch.channels_last),))
        self.assertEqual([(p["dtype"], p["layout"]) for p in found], [("float32", "NHWC")])

    def test_mixed_dtypes_are_refused_naming_them(self):
        block = dtorch.ConvTranspose2dEpilogue(16, 8, 3)
        with self.assertRaises(ValueError) as caught:
            block(torch.rand(2, 16, 8, 8).half())
        self.assertIn("mixed dtypes (x torch.float16, weight torch.float32, bias torch.float32)",
                      str(caught.exception))
        with self.assertRaisesRegex(ValueError, r"mixed dtypes \(x torch.float32, weight torch.bfloat16\)"):
            dtorch.conv_transpose2d_epilogue(torch.rand(2, 16, 8, 8), torch.rand(16, 8, 3, 3).bfloat16())

    def test_autocast_off_or_on_the_cpu_leaves_the_inputs(self):
        x, w = torch.rand(2, 16, 8, 8), torch.rand(16, 8, 3, 3)
        self.assertIs(dtorch._autocast(x, w, None)[0], x)


class Epilogue(unittest.TestCase):
    def test_the_forms_of_a_chain_are_one_chain(self):
        canonical = (("mish",), ("add", 0.5), ("hardtanh", -1.0, 1.0), ("mul", 2.0))
        for form in (SEED_CHAIN, " mish , add:0.5,hardtanh: -1 :1,mul:2", ["mish", "add:0.5", "hardtanh:-1:1", "mul:2"],
                     [("mish",), ("add", 0.5), ["hardtanh", -1, 1], ("mul", 2)], canonical):
            self.assertEqual(dtorch.parse_epilogue(form), canonical, form)
        self.assertEqual(dtorch.parse_epilogue(None), ())
        self.assertEqual(dtorch.parse_epilogue(""), ())
        self.assertEqual(dtorch.epilogue_text(canonical), "mish,add:0.5,hardtanh:-1.0:1.0,mul:2.0")
        self.assertEqual(dtorch.parse_epilogue(dtorch.epilogue_text("add:0.1")), (("add", 0.1),))  # exact

    def test_what_the_kernels_refuse_is_refused_naming_the_op(self):
        cases = [("relu,elu", "epilogue op 'elu' is unknown"), ("add", "'add' takes 1 argument(s), got 0"),
                 ("relu:1", "takes 0 argument(s)"), ("hardtanh:1:-1", "lower bound exceeds upper bound"),
                 ("mul:nan", "not a finite number"), ("mul:1e39", "fp32 range"), ("add:1e-40", "below the fp32"),
                 ([("add", True)], "not a finite number"), ([3], "each op is a string"), (5, "must be a string")]
        for epilogue, message in cases:
            with self.assertRaises(ValueError, msg=epilogue) as caught:
                dtorch.parse_epilogue(epilogue)
            self.assertIn(message, str(caught.exception))


class CpuPath(unittest.TestCase):
    def test_the_seed_block_matches_the_model_on_cpu(self):
        torch.manual_seed(0)
        model = seed_model.Model(*SMALL_SEED)
        block = dtorch.ConvTranspose2dEpilogue.from_model(model)
        x = torch.rand(2, 16, 9, 7)
        with torch.no_grad():
            self.assertTrue(torch.equal(block(x), model(x)))  # the same PyTorch ops, in the same order

    def test_every_chain_and_geometry_matches_the_unfused_modules(self):
        torch.manual_seed(0)
        geometries = [dict(), dict(groups=2, bias=False), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                      dict(stride=3, output_padding=2)]
        for chain in CHAINS:
            for geometry in geometries:
                conv = nn.ConvTranspose2d(8, 6, 3, **geometry)
                block = dtorch.ConvTranspose2dEpilogue.from_conv_transpose(conv, chain)
                x = torch.randn(2, 8, 5, 6)
                with torch.no_grad():
                    self.assertTrue(torch.equal(block(x), unfused(conv, chain)(x)), (chain, geometry))

    def test_the_functional_form(self):
        torch.manual_seed(0)
        x, w, b = torch.randn(1, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(3)
        y = dtorch.conv_transpose2d_epilogue(x, w, b, 2, 1, 1, epilogue=[("gelu",), ("mul", 3)])
        self.assertTrue(torch.equal(y, F.gelu(F.conv_transpose2d(x, w, b, 2, 1, 1)) * 3.0))
        y = dtorch.conv_transpose2d_epilogue(x.double(), w.double(), None, dilation=(2, 1))
        self.assertTrue(torch.equal(y, F.conv_transpose2d(x.double(), w.double(), None, dilation=(2, 1))))
        with self.assertRaisesRegex(ValueError, "stride must be an int or a pair of ints, got"):
            dtorch.conv_transpose2d_epilogue(x, w, b, stride=(1, 2, 3))
        with self.assertRaisesRegex(ValueError, "groups=3 does not divide in_channels=4"):
            dtorch.conv_transpose2d_epilogue(x, w, None, groups=3)
        with self.assertRaisesRegex(ValueError, r"bias has shape \[4\], expected \[3\]"):
            dtorch.conv_transpose2d_epilogue(x, w, torch.zeros(4))

    def test_clear_errors_on_either_device(self):
        block = dtorch.ConvTranspose2dEpilogue(16, 8, 3)
        cases = [(torch.rand(2, 8, 8, 8), "x has 8 channels, the weight expects 16"),
                 (torch.rand(16, 8, 8), "x must be 4-D NCHW"),
                 (torch.ones(2, 16, 8, 8, dtype=torch.int32), "x has dtype torch.int32; a floating-point")]
        for x, message in cases:
            with self.assertRaises(ValueError) as caught:
                block(x)
            self.assertIn(message, str(caught.exception))
        with self.assertRaisesRegex(TypeError, "x must be a torch.Tensor, got list"):
            block([1.0, 2.0])
        with self.assertRaisesRegex(ValueError, "x has 8 channels, the module expects 16"):
            block.problem((2, 8, 4, 4), "fp32")

    def test_torch_fx_traces_the_module_as_one_call(self):
        block = dtorch.ConvTranspose2dEpilogue(8, 4, 3, 2, 1, 1, epilogue=SEED_CHAIN)
        traced = torch.fx.symbolic_trace(block)
        calls = [n.target for n in traced.graph.nodes if n.op == "call_function"]
        self.assertEqual(calls, [dtorch._fused])
        x = torch.randn(2, 8, 5, 5)
        self.assertTrue(torch.equal(traced(x), block(x)))

    def test_torch_fx_keeps_the_functional_form_whole(self):
        class User(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(8, 4, 3, 3))

            def forward(self, x):
                return dtorch.conv_transpose2d_epilogue(x, self.w, None, 2, epilogue="relu")

        traced = torch.fx.symbolic_trace(User())
        calls = [n.target for n in traced.graph.nodes if n.op == "call_function"]
        self.assertEqual(calls, [dtorch.conv_transpose2d_epilogue])
        x = torch.randn(2, 8, 5, 5)
        self.assertTrue(torch.equal(traced(x), F.relu(F.conv_transpose2d(x, traced.w, None, 2))))


class Training(unittest.TestCase):
    def test_gradcheck_in_float64_over_epilogue_chains(self):
        torch.manual_seed(0)
        for chain in CHAINS:
            for groups, bias, stride in ((1, True, 2), (2, False, (1, 2))):
                x = torch.randn(1, 4, 4, 3, dtype=torch.float64, requires_grad=True)
                w = (0.5 * torch.randn(4, 6 // groups, 3, 3, dtype=torch.float64)).requires_grad_()
                b = torch.randn(6, dtype=torch.float64, requires_grad=True) if bias else None

                def block(x, w, b):
                    return dtorch.conv_transpose2d_epilogue(x, w, b, stride, 1, 0, groups, epilogue=chain)
                self.assertTrue(torch.autograd.gradcheck(block, (x, w, b)), (chain, groups))

    def test_gradients_are_the_unfused_models(self):
        torch.manual_seed(0)
        for chain in CHAINS:
            conv = nn.ConvTranspose2d(8, 6, 3, 2, 1, 1)
            block = dtorch.ConvTranspose2dEpilogue.from_conv_transpose(conv, chain)  # shares conv's parameters
            x = torch.randn(2, 8, 5, 5, requires_grad=True)
            grad_y = torch.randn(2, 6, 10, 10)
            grads = torch.autograd.grad(block(x), (x, conv.weight, conv.bias), grad_y)
            expected = torch.autograd.grad(unfused(conv, chain)(x), (x, conv.weight, conv.bias), grad_y)
            for name, got, want in zip(("x", "weight", "bias"), grads, expected):
                self.assertTrue(torch.allclose(got, want, rtol=1e-5, atol=1e-6), (chain, name))

    def test_only_the_gradients_asked_for_are_computed(self):
        block = dtorch.ConvTranspose2dEpilogue(4, 4, 3, epilogue="tanh")
        block.conv_transpose.weight.requires_grad_(False)
        x = torch.randn(1, 4, 3, 3)
        block(x).sum().backward()
        self.assertIsNone(block.conv_transpose.weight.grad)
        self.assertIsNotNone(block.conv_transpose.bias.grad)
        with torch.no_grad():
            self.assertIsNone(block(x).grad_fn)

    def test_inference_calls_skip_the_op_and_autograd_calls_take_it(self):
        block = dtorch.ConvTranspose2dEpilogue(4, 4, 3, epilogue="tanh")
        x = torch.randn(1, 4, 3, 3)
        expected = torch.tanh(block.conv_transpose(x)).detach()
        calls = []
        real_apply = dtorch._apply

        def counting_apply(*args):
            calls.append(args[0].shape)
            return real_apply(*args)

        with mock.patch.object(dtorch, "_apply", counting_apply):
            with torch.no_grad():
                self.assertTrue(torch.allclose(block(x), expected, atol=1e-6))
            with torch.inference_mode():
                self.assertTrue(torch.allclose(block(x), expected, atol=1e-6))
            block.requires_grad_(False)
            self.assertTrue(torch.allclose(block(x), expected, atol=1e-6))  # nothing requires grad
            self.assertEqual(calls, [])
            block.requires_grad_(True)
            y = block(x)  # autograd records it: through the op, which has the backward
            self.assertEqual(len(calls), 1)
            self.assertIsNotNone(y.grad_fn)
            with torch.no_grad(), mock.patch.object(dtorch, "_is_compiling", lambda: True):
                block(x)  # torch.compile's graph holds the op
            self.assertEqual(len(calls), 2)
            # What traces with fake tensors (AOT autograd, export) meets the op, never a data pointer.
            from torch._subclasses.fake_tensor import FakeTensorMode
            conv = block.conv_transpose
            with torch.no_grad():
                mode = FakeTensorMode()
                fakes = [mode.from_tensor(t.detach()) for t in (x, conv.weight, conv.bias)]
                with mode:
                    y = dtorch.conv_transpose2d_epilogue(*fakes, epilogue="tanh")
            self.assertEqual(len(calls), 3)
            self.assertEqual(tuple(y.shape), tuple(expected.shape))

    def test_a_second_derivative_is_refused_not_wrong(self):
        block = dtorch.ConvTranspose2dEpilogue(4, 4, 3, epilogue="tanh")
        x = torch.randn(1, 4, 3, 3, requires_grad=True)
        (grad_x,) = torch.autograd.grad(block(x).sum(), x, create_graph=True)
        # once_differentiable: grad_x has no graph, so differentiating it again fails loudly.
        with self.assertRaisesRegex(RuntimeError, "does not require grad|once_differentiable"):
            grad_x.sum().backward()

    def test_the_module_trains(self):
        torch.manual_seed(0)
        block = dtorch.ConvTranspose2dEpilogue(4, 2, 3, 2, 1, 1, epilogue="mish,mul:0.5")
        optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
        x, target = torch.randn(8, 4, 4, 4), torch.randn(8, 2, 8, 8) * 0.1
        losses = []
        for _ in range(20):
            optimizer.zero_grad()
            loss = F.mse_loss(block(x), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        self.assertLess(losses[-1], 0.9 * losses[0])
        self.assertEqual(losses, sorted(losses, reverse=True))  # steadily down


@unittest.skipIf(GPU_SKIP, GPU_SKIP)
class Gpu(unittest.TestCase):
    def check_matches_model(self, init, x_shape, precision, **kwargs):
        torch.manual_seed(0)
        model = seed_model.Model(*init).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision=precision, **kwargs)
        x = torch.rand(*x_shape, device="cuda")
        with torch.no_grad():
            y = block(x)
        expected, exact = reference_output(model, x, precision)
        bound = dtorch.PRECISION_BOUNDS[precision]
        scale = max(1.0, exact.abs().max().item())
        error = (y.double() - exact).abs().max().item()
        self.assertLessEqual(error, bound * scale, f"{precision} {x_shape}: max |err| {error}")
        self.assertEqual(y.shape, expected.shape)
        return y

    def test_matches_the_model_in_both_precisions(self):
        for precision in ("fp32", "tf32"):
            self.check_matches_model(SMALL_SEED, (4, 16, 32, 32), precision)
            self.check_matches_model([13, 19, 3, 2, 1, 1, 0.1, 1.5], (2, 13, 11, 15), precision)

    def test_gradients_match_the_unfused_model(self):
        torch.manual_seed(0)
        for chain in CHAINS:
            conv = nn.ConvTranspose2d(16, 8, 3, 2, 1, 1).cuda()
            block = dtorch.ConvTranspose2dEpilogue.from_conv_transpose(conv, chain, precision="fp32")
            x = torch.randn(2, 16, 9, 9, device="cuda", requires_grad=True)
            grad_y = torch.randn(2, 8, 18, 18, device="cuda")
            grads = torch.autograd.grad(block(x), (x, conv.weight, conv.bias), grad_y)
            expected = torch.autograd.grad(unfused(conv, chain)(x), (x, conv.weight, conv.bias), grad_y)
            for name, got, want in zip(("x", "weight", "bias"), grads, expected):
                self.assertTrue(torch.allclose(got, want, rtol=1e-4, atol=1e-5), (chain, name))

    def test_follows_allow_tf32(self):
        model = seed_model.Model(*SMALL_SEED).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model)
        x = torch.rand(2, 16, 16, 16, device="cuda")
        saved = torch.backends.cudnn.allow_tf32
        try:
            keys = []
            for allow in (True, False):
                torch.backends.cudnn.allow_tf32 = allow
                block(x)
                keys.append(json.loads(block.problem(x.shape, block.current_precision()))["precision"])
            self.assertEqual(keys, ["tf32", "fp32"])
        finally:
            torch.backends.cudnn.allow_tf32 = saved

    def test_runs_on_the_current_stream(self):
        model = seed_model.Model(*SMALL_SEED).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        x = torch.rand(8, 16, 64, 64, device="cuda")
        expected = block(x)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            y = block(x)  # enqueued on `stream`: only after its synchronize is y surely written
        stream.synchronize()
        self.assertTrue(torch.equal(y, expected))

    @unittest.skipUnless(dtorch.HAS_CUSTOM_OP, "this PyTorch has no torch.library.custom_op")
    def test_works_in_torch_compile(self):
        model = seed_model.Model(*SMALL_SEED).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        x = torch.rand(2, 16, 16, 16, device="cuda")
        compiled = torch.compile(block, fullgraph=True)
        with torch.no_grad():
            self.assertTrue(torch.equal(compiled(x), block(x)))
        conv = block.conv_transpose
        torch.library.opcheck(torch.ops.deconvtune.conv_transpose2d_epilogue.default,
                              (x, conv.weight.detach(), conv.bias.detach(), [2, 2], [1, 1], [1, 1], 1, [1, 1],
                               block.epilogue, "fp32", "", "heuristic"))

    @unittest.skipUnless(dtorch.HAS_CUSTOM_OP, "this PyTorch has no torch.library.custom_op")
    def test_works_in_torch_compile_in_bfloat16_channels_last_and_autocast(self):
        model = seed_model.Model(*SMALL_SEED).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        x = torch.rand(2, 16, 16, 16, device="cuda").to(memory_format=torch.channels_last)
        with torch.no_grad():
            half = copy.deepcopy(block).bfloat16()
            compiled = torch.compile(half, fullgraph=True)
            y = compiled(x.bfloat16())
            self.assertTrue(torch.equal(y, half(x.bfloat16())))
            self.assertTrue(y.is_contiguous(memory_format=torch.channels_last))
            compiled_fp32 = torch.compile(block, fullgraph=True)
            with torch.autocast("cuda", dtype=torch.float16):
                y = compiled_fp32(x)
                expected = block(x)
            self.assertEqual(y.dtype, torch.float16)
            self.assertTrue(torch.equal(y, expected))
        conv = half.conv_transpose
        torch.library.opcheck(torch.ops.deconvtune.conv_transpose2d_epilogue.default,
                              (x.bfloat16(), conv.weight.detach(), conv.bias.detach(), [2, 2], [1, 1], [1, 1], 1,
                               [1, 1], half.epilogue, "fp32", "", "heuristic"))

    def test_device_errors(self):
        block = dtorch.ConvTranspose2dEpilogue(16, 8, 3).cuda()
        with self.assertRaisesRegex(ValueError, "weight is on cuda:0 but x is on cpu"):
            block(torch.rand(2, 16, 8, 8))
        cpu_block = dtorch.ConvTranspose2dEpilogue(16, 8, 3)
        with self.assertRaisesRegex(ValueError, "weight is on cpu but x is on cuda"):
            cpu_block(torch.rand(2, 16, 8, 8, device="cuda"))
        cases = [(torch.rand(2, 16, 8, 8, device="cuda", dtype=torch.float64),
                  "on CUDA only torch.float32, torch.bfloat16 and torch.float16"),
                 (torch.rand(2, 16, 8, 8, device="cuda").transpose(2, 3),
                  "x is neither contiguous \\(NCHW\\) nor channels_last")]
        for x, message in cases:
            with self.assertRaisesRegex(ValueError, message):
                (block.double() if x.dtype == torch.float64 else block.float())(x)

    def check_half(self, dtype, channels_last, init, x_shape, autocast=False):
        """y in x's dtype and memory format, within the library's bound for a 16-bit y of the float64
        block on the same rounded inputs; PyTorch eager's error in that dtype printed beside it."""
        torch.manual_seed(0)
        model = seed_model.Model(*init).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        x = torch.rand(*x_shape, device="cuda")
        if not autocast:
            block = block.to(dtype)
            x = x.to(dtype)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=autocast):
            y = block(x)
        self.assertEqual(y.dtype, dtype)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.assertTrue(y.is_contiguous(memory_format=memory_format))
        conv = block.conv_transpose
        rounded = [t.to(dtype).double() for t in (x, conv.weight, conv.bias)]
        exact = dtorch.apply_epilogue(F.conv_transpose2d(*rounded, conv.stride, conv.padding, conv.output_padding,
                                                         conv.groups, conv.dilation), block.epilogue)
        with torch.no_grad():
            eager = dtorch.apply_epilogue(F.conv_transpose2d(*(t.to(dtype) for t in (x, conv.weight, conv.bias)),
                                                             conv.stride, conv.padding, conv.output_padding,
                                                             conv.groups, conv.dilation), block.epilogue)
        largest = exact.abs().max().item()
        unit_roundoff = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}[dtype]
        bound = dtorch.PRECISION_BOUNDS["fp32"] * max(1.0, largest / 2) + unit_roundoff * largest
        error = (y.double() - exact).abs().max().item()
        eager_error = (eager.double() - exact).abs().max().item()
        print(f"{dtype} channels_last={channels_last} {x_shape}: max |err| {error:.3e} (bound {bound:.3e}, "
              f"eager {eager_error:.3e})")
        self.assertLessEqual(error, bound, f"{dtype} {x_shape}")

    def test_half_precision_and_channels_last_match_float64(self):
        for dtype in (torch.bfloat16, torch.float16):
            for channels_last in (False, True):
                self.check_half(dtype, channels_last, SMALL_SEED, (4, 16, 32, 32))
                self.check_half(dtype, channels_last, [13, 19, 3, 2, 1, 1, 0.1, 1.5], (2, 13, 11, 15))

    def test_channels_last_float32(self):
        torch.manual_seed(0)
        model = seed_model.Model(*SMALL_SEED).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32").to(
            memory_format=torch.channels_last)  # W channels_last too: the module copies it contiguous
        x = torch.rand(2, 16, 13, 9, device="cuda").to(memory_format=torch.channels_last)
        with torch.no_grad():
            y = block(x)
            exact = copy.deepcopy(model).double()(x.double().contiguous())
        self.assertTrue(y.is_contiguous(memory_format=torch.channels_last))
        self.assertEqual(y.dtype, torch.float32)
        scale = max(1.0, exact.abs().max().item())
        error = (y.double() - exact).abs().max().item()
        self.assertLessEqual(error, dtorch.PRECISION_BOUNDS["fp32"] * scale, f"max |err| {error}")

    def test_an_x_that_starts_anywhere_in_its_allocation(self):
        """A contiguous view one element into a flat buffer (as a buffer's slices give): the staged
        kernels (the bfloat16 default here) read x in 16-byte boxes, so the module copies such an x
        rather than handing the library a pointer it refuses; y is the aligned copy's."""
        torch.manual_seed(0)
        model = seed_model.Model(*SMALL_SEED).cuda()
        shape = (4, 16, 32, 32)
        for dtype in (torch.bfloat16, torch.float32):
            block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="tf32").to(dtype)
            flat = torch.rand(shape[0] * shape[1] * shape[2] * shape[3] + 1, device="cuda").to(dtype)
            x = flat[1:].view(shape)
            self.assertNotEqual(x.data_ptr() % 16, 0)  # not where a 16-byte box may start
            with torch.no_grad():
                self.assertTrue(torch.equal(block(x), block(x.clone())), dtype)

    def test_works_under_autocast(self):
        for dtype in (torch.bfloat16, torch.float16):
            self.check_half(dtype, False, SMALL_SEED, (2, 16, 16, 16), autocast=True)
            self.check_half(dtype, True, SMALL_SEED, (2, 16, 16, 16), autocast=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
