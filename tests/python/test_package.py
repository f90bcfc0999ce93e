"""The installed deconvtune package (run with the venv's python after `pip install --no-index ./python`):
import, version, library lookup and its error, C API errors as Python exceptions, deconvtune.db's
winners through the CLI beside the library (a DB tuned with --simulate). Needs no torch.

Environment: DECONVTUNE_EXPECTED_VERSION (the project version), DECONVTUNE_TEST_LIBRARY_DIR (the
build folder with libdeconvtune.so; empty: the library checks are skipped, e.g. a sanitizer build).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import deconvtune

LIBRARY_DIR = os.environ.get("DECONVTUNE_TEST_LIBRARY_DIR", "")
if LIBRARY_DIR:
    os.environ["DECONVTUNE_LIBRARY_PATH"] = LIBRARY_DIR  # for this process's own library() calls
SMALL = {"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8, "kernel_size": 3,
         "stride": 2, "padding": 1, "output_padding": 1}
SMALL_JSON = json.dumps(SMALL)


def run_python(code, **env):
    """Runs `code` in a fresh interpreter (the library is loaded once per process)."""
    full_env = dict(os.environ)
    full_env.pop("DECONVTUNE_LIBRARY_PATH", None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          cwd=tempfile.gettempdir())


class Package(unittest.TestCase):
    def test_installed_not_from_the_source_tree(self):
        self.assertIn("site-packages", deconvtune.__file__)

    def test_version(self):
        self.assertEqual(deconvtune.__version__, os.environ["DECONVTUNE_EXPECTED_VERSION"])

    def test_the_torch_compile_backend_is_declared_as_an_entry_point(self):
        import importlib.metadata
        points = importlib.metadata.distribution("deconvtune").entry_points
        self.assertEqual([(p.group, p.name, p.value) for p in points],
                         [("torch_dynamo_backends", "deconvtune", "deconvtune.torch:backend")])

    def test_import_needs_no_library_and_the_error_lists_where_it_looked(self):
        missing = os.path.join(tempfile.gettempdir(), "no-such-dir-deconvtune", "libdeconvtune.so")
        result = run_python("import deconvtune\nprint(deconvtune.__version__)\ndeconvtune.library()",
                            DECONVTUNE_LIBRARY_PATH=missing, LD_LIBRARY_PATH="")
        self.assertIn(deconvtune.__version__, result.stdout)  # the import itself worked
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("LibraryNotFoundError", result.stderr)
        self.assertIn(f"$DECONVTUNE_LIBRARY_PATH: {missing} (no such file)", result.stderr)
        self.assertIn("next to the package", result.stderr)
        self.assertIn("the system search path: libdeconvtune.so", result.stderr)


@unittest.skipUnless(LIBRARY_DIR, "no library to load in this build (sanitizer build)")
class Library(unittest.TestCase):
    def test_found_through_the_environment_as_folder_or_file(self):
        for path in (LIBRARY_DIR, os.path.join(LIBRARY_DIR, "libdeconvtune.so")):
            result = run_python("import deconvtune\nprint(deconvtune.library_version())\n"
                                "print(deconvtune.library_path())", DECONVTUNE_LIBRARY_PATH=path)
            self.assertEqual(result.returncode, 0, result.stderr)
            version, loaded = result.stdout.split()
            self.assertEqual(version, deconvtune.__version__)
            self.assertTrue(os.path.samefile(os.path.dirname(loaded), LIBRARY_DIR))

    def test_found_next_to_the_package(self):
        import shutil
        copy = os.path.join(os.path.dirname(deconvtune.__file__), "libdeconvtune.so")
        shutil.copy(os.path.join(LIBRARY_DIR, "libdeconvtune.so"), copy)
        try:
            result = run_python("import deconvtune\nprint(deconvtune.library_path())", LD_LIBRARY_PATH="")
        finally:
            os.remove(copy)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), copy)

    def test_found_on_the_system_search_path(self):
        result = run_python("import deconvtune\nprint(deconvtune.library_version())",
                            LD_LIBRARY_PATH=LIBRARY_DIR)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), deconvtune.__version__)

    def test_errors(self):
        with tempfile.TemporaryDirectory() as folder:
            engine = deconvtune.Engine(os.path.join(folder, "tuning.db"))
            with self.assertRaises(deconvtune.BadProblemError) as caught:
                engine.plan(dict(SMALL, output_padding=3))
            self.assertIn("output_padding", str(caught.exception))
            self.assertIsInstance(caught.exception, ValueError)
            self.assertEqual(caught.exception.status, 2)
            with self.assertRaises(deconvtune.BadProblemError) as caught:
                engine.plan('{"batch": ')
            self.assertIn("malformed JSON", str(caught.exception))
            with self.assertRaisesRegex(ValueError, "on_miss"):
                deconvtune.Engine(os.path.join(folder, "tuning.db"), on_miss="sometimes")
            with self.assertRaisesRegex(ValueError, "precision"):
                deconvtune.Engine(os.path.join(folder, "tuning.db"), precision="fp16")
            with self.assertRaisesRegex(ValueError, "device"):
                deconvtune.Engine(os.path.join(folder, "tuning.db"), device=-1)
            with self.assertRaises(deconvtune.DeconvtuneError) as caught:
                with open(os.path.join(folder, "bad.db"), "w") as f:
                    f.write("not a database")
                deconvtune.Engine(os.path.join(folder, "bad.db"))
            self.assertIn("bad.db", str(caught.exception))
            available, reason = deconvtune.gpu_available()
            if not available:
                self.assertTrue(reason)
                with self.assertRaises(deconvtune.NoGpuError) as caught:
                    engine.plan(SMALL)
                self.assertIn("GPU", str(caught.exception))
            else:
                plan = engine.plan(SMALL)
                self.assertEqual(plan.output_shape, (1, 4, 16, 16))
                self.assertIn(plan.x_alignment, (4, 16))  # float32: one element or a 16-byte read
                self.assertEqual(plan.source, "rule")


@unittest.skipUnless(LIBRARY_DIR, "no library to load in this build (sanitizer build)")
class Db(unittest.TestCase):
    """deconvtune.db through the CLI found beside the library (the build tree's layout)."""

    @classmethod
    def setUpClass(cls):
        import deconvtune.db
        cls.folder = tempfile.mkdtemp(prefix="deconvtune-db-test-")
        cls.db = os.path.join(cls.folder, "tuning.db")
        cls.cli = deconvtune.db.cli_path()
        for precision in ("fp32", "tf32"):  # simulated measurements, written as a real run writes them
            subprocess.run([cls.cli, "autotune", "--simulate", "--problem", SMALL_JSON, "--db", cls.db,
                            "--max-trials", "4", "--precision", precision, "-q"], check=True,
                           capture_output=True, text=True)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.folder)

    def test_the_cli_is_found_beside_the_library(self):
        self.assertTrue(os.path.samefile(self.cli, os.path.join(LIBRARY_DIR, "deconvtune")))

    def test_winners(self):
        import deconvtune.db
        winners = deconvtune.db.winners(self.db)
        self.assertEqual(sorted(w.precision for w in winners), ["fp32", "tf32"])
        listed = subprocess.run([self.cli, "db", "list", "--db", self.db], capture_output=True, text=True,
                                check=True).stdout
        for winner in winners:
            for field, value in SMALL.items():  # the DB keeps sizes as pairs
                self.assertIn(winner.problem[field], (value, [value, value]), field)
            self.assertIn(winner.config, listed)
            self.assertGreater(winner.median_ms, 0)
            self.assertTrue(winner.device["name"])
            self.assertLessEqual(winner.median_ms, min(
                t["median_ms"] for t in deconvtune.db.export(self.db, everything=True)["trials"]
                if t["status"] == "ok" and t["precision"] == winner.precision))

    def test_a_missing_db_has_no_winners_and_is_not_created(self):
        import deconvtune.db
        missing = os.path.join(self.folder, "missing.db")
        self.assertEqual(deconvtune.db.winners(missing), [])
        self.assertFalse(os.path.exists(missing))

    def test_errors_name_the_file_or_the_variable(self):
        import deconvtune.db
        bad = os.path.join(self.folder, "bad.db")
        with open(bad, "w") as f:
            f.write("not a database")
        with self.assertRaises(deconvtune.DeconvtuneError) as caught:
            deconvtune.db.winners(bad)
        self.assertIn("bad.db", str(caught.exception))
        result = run_python("import deconvtune.db\ndeconvtune.db.cli_path()",
                            DECONVTUNE_WORKER="/no/such/deconvtune", DECONVTUNE_LIBRARY_PATH=LIBRARY_DIR)
        self.assertIn("CliNotFoundError: deconvtune: $DECONVTUNE_WORKER is '/no/such/deconvtune'", result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
