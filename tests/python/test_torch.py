"""deconvtune.torch: the drop-in module for the user's Model.

CPU part (any PyTorch, e.g. Debian's 1.13 under /usr/bin/python3): construction from the Model's
arguments, from_model's weights, the problem the module describes (accepted by the C library's
parser, output shapes as PyTorch computes them), precision following allow_tf32, and clear errors
for tensors the kernel cannot take. GPU part (skipped without CUDA): outputs vs the Model in both
precisions, torch's current stream, torch.compile through the custom op, device errors.

Environment: DECONVTUNE_REFERENCE_DIR (folder of seed_model.py), DECONVTUNE_TEST_LIBRARY_DIR (the
library's folder; empty: checks that load it are skipped), DECONVTUNE_DB (the tests' DB path).
"""
import json
import os
import sys
import tempfile
import unittest

import torch

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
SMALL_INIT = [16, 8, 3, 2, 1, 1, 0.5, 2.0]  # the seed's arguments, fewer channels


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
    def test_same_arguments_and_parameters_as_the_model(self):
        model = seed_model.Model(*seed_model.get_init_inputs())
        block = dtorch.ConvTranspose2dEpilogue(*seed_model.get_init_inputs())
        self.assertEqual({k: v.shape for k, v in block.state_dict().items()},
                         {k: v.shape for k, v in model.state_dict().items()})
        self.assertEqual(block.epilogue, "mish,add:0.5,hardtanh:-1:1,mul:2.0")
        block.load_state_dict(model.state_dict())  # state dicts load either way
        model.load_state_dict(block.state_dict())

    def test_from_model_copies_the_weights(self):
        model = seed_model.Model(*SMALL_INIT[:6], 0.25, 3)
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        self.assertTrue(torch.equal(block.conv_transpose.weight, model.conv_transpose.weight))
        self.assertTrue(torch.equal(block.conv_transpose.bias, model.conv_transpose.bias))
        self.assertNotEqual(block.conv_transpose.weight.data_ptr(), model.conv_transpose.weight.data_ptr())
        self.assertEqual(block.epilogue, "mish,add:0.25,hardtanh:-1:1,mul:3.0")
        self.assertEqual(block.precision, "fp32")

    def test_from_model_refuses_other_models(self):
        with self.assertRaisesRegex(TypeError, "conv_transpose"):
            dtorch.ConvTranspose2dEpilogue.from_model(torch.nn.Linear(2, 2))
        model = seed_model.Model(*SMALL_INIT)
        del model.scale
        with self.assertRaisesRegex(TypeError, "scale"):
            dtorch.ConvTranspose2dEpilogue.from_model(model)

    def test_bad_options(self):
        with self.assertRaisesRegex(ValueError, "precision"):
            dtorch.ConvTranspose2dEpilogue(*SMALL_INIT, precision="bf16")
        with self.assertRaisesRegex(ValueError, "on_miss"):
            dtorch.ConvTranspose2dEpilogue(*SMALL_INIT, on_miss="maybe")

    def test_precision_follows_allow_tf32_unless_given(self):
        block = dtorch.ConvTranspose2dEpilogue(*SMALL_INIT)
        saved = torch.backends.cudnn.allow_tf32
        try:
            torch.backends.cudnn.allow_tf32 = True
            self.assertEqual(block.current_precision(), "tf32")
            torch.backends.cudnn.allow_tf32 = False
            self.assertEqual(block.current_precision(), "fp32")
            self.assertEqual(dtorch.ConvTranspose2dEpilogue(*SMALL_INIT, precision="tf32").current_precision(),
                             "tf32")
        finally:
            torch.backends.cudnn.allow_tf32 = saved

    def test_problem_shapes_are_pytorchs(self):
        for kwargs in ({}, {"groups": 4}, {"dilation": (1, 2)}, {"bias": False}):
            args = [16, 8, (3, 5), (2, 1), (1, 2), (1, 0), 0.5, 2.0]
            block = dtorch.ConvTranspose2dEpilogue(*args, **kwargs)
            x = torch.rand(2, 16, 7, 9)
            spec = json.loads(block.problem(x.shape, "fp32"))
            with torch.no_grad():
                expected = list(block.conv_transpose(x).shape)
            self.assertEqual(dtorch.output_shape(spec), expected, kwargs)
            self.assertEqual(spec["bias"], kwargs.get("bias", True))

    @unittest.skipUnless(LIBRARY_DIR, "no library to load in this build")
    def test_the_library_accepts_the_modules_problem(self):
        block = dtorch.ConvTranspose2dEpilogue(*SMALL_INIT, groups=2, dilation=2)
        engine = deconvtune.Engine()
        try:
            plan = engine.plan(block.problem((2, 16, 8, 8), "tf32"))
        except deconvtune.NoGpuError:
            return  # the problem parsed and validated; only the GPU is missing
        self.assertEqual(list(plan.output_shape), dtorch.output_shape(json.loads(block.problem((2, 16, 8, 8), "tf32"))))

    def test_clear_errors_for_tensors_the_kernel_cannot_take(self):
        block = dtorch.ConvTranspose2dEpilogue(*SMALL_INIT)
        cases = [
            (torch.rand(2, 16, 8, 8), "x is on cpu; ConvTranspose2dEpilogue runs on CUDA"),
            (torch.rand(2, 16, 8, 8, dtype=torch.float64), "x has dtype torch.float64; only torch.float32"),
            (torch.rand(2, 16, 8, 8).to(memory_format=torch.channels_last), "x is not contiguous"),
            (torch.rand(2, 8, 8, 8), "x has 8 channels, the module expects 16"),
            (torch.rand(16, 8, 8), "x must be 4-D NCHW"),
        ]
        for x, message in cases:
            with self.assertRaises(ValueError) as caught:
                block(x)
            self.assertIn(message, str(caught.exception))
        with self.assertRaisesRegex(TypeError, "torch.Tensor"):
            block([1.0, 2.0])


@unittest.skipUnless(HAS_CUDA and LIBRARY_DIR, "needs a CUDA GPU and the library")
class Gpu(unittest.TestCase):
    def check_matches_model(self, init, x_shape, precision, **kwargs):
        torch.manual_seed(0)
        model = seed_model.Model(*init).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision=precision, **kwargs)
        x = torch.rand(*x_shape, device="cuda")
        with torch.no_grad():
            y = block(x)
        expected, exact = reference_output(model, x, precision)
        bound = 1e-3 if precision == "tf32" else 2e-6
        scale = max(1.0, exact.abs().max().item())
        error = (y.double() - exact).abs().max().item()
        self.assertLessEqual(error, bound * scale, f"{precision} {x_shape}: max |err| {error}")
        self.assertEqual(y.shape, expected.shape)
        return y

    def test_matches_the_model_in_both_precisions(self):
        for precision in ("fp32", "tf32"):
            self.check_matches_model(SMALL_INIT, (4, 16, 32, 32), precision)
            self.check_matches_model([13, 19, 3, 2, 1, 1, 0.1, 1.5], (2, 13, 11, 15), precision)

    def test_follows_allow_tf32(self):
        model = seed_model.Model(*SMALL_INIT).cuda()
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
        model = seed_model.Model(*SMALL_INIT).cuda()
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
        model = seed_model.Model(*SMALL_INIT).cuda()
        block = dtorch.ConvTranspose2dEpilogue.from_model(model, precision="fp32")
        x = torch.rand(2, 16, 16, 16, device="cuda")
        compiled = torch.compile(block, fullgraph=True)
        with torch.no_grad():
            self.assertTrue(torch.equal(compiled(x), block(x)))
        torch.library.opcheck(torch.ops.deconvtune.conv_transpose2d_epilogue.default,
                              (x, block.conv_transpose.weight.detach(), block.conv_transpose.bias.detach(),
                               block.problem(x.shape, "fp32"), "", "heuristic"))

    def test_device_errors(self):
        block = dtorch.ConvTranspose2dEpilogue(*SMALL_INIT).cuda()
        with self.assertRaisesRegex(ValueError, "x is on cpu"):
            block(torch.rand(2, 16, 8, 8))
        cpu_block = dtorch.ConvTranspose2dEpilogue(*SMALL_INIT)
        with self.assertRaisesRegex(ValueError, "weight is on cpu"):
            cpu_block(torch.rand(2, 16, 8, 8, device="cuda"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
