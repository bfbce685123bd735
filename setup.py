"""Build script: compiles ext/_store.pyx into flowctx._store.

A compile error fails the install: there is no silent fallback to the pure-Python twin at build
time.  Set FLOWCTX_PURE_PYTHON=1 to build a pure (py3-none-any) package on purpose; use
``pip install --no-cache-dir`` when switching, or pip's wheel cache may hand back the other build.

The extension is built without debug information and stripped on Linux (about 190 KB instead of
900 KB); set FLOWCTX_DEBUG_BUILD=1 to keep the symbols for gdb or valgrind.
"""
import hashlib
import json
import os
import sys

from setuptools import setup

PURE = os.environ.get("FLOWCTX_PURE_PYTHON", "") not in ("", "0")
DEBUG = os.environ.get("FLOWCTX_DEBUG_BUILD", "") not in ("", "0")
BUILD_DIR = os.path.join("build", "cython")

HINT = """
flowctx: the compiled context store (ext/_store.pyx) failed to build.
  A C compiler and the Python headers are needed (e.g. apt install build-essential python3-dev).
  To install the pure-Python store instead, on purpose:
      FLOWCTX_PURE_PYTHON=1 pip install --no-cache-dir flowctx
"""


def _directives_changed(directives: dict) -> bool:
    """True when the Cython directives or version differ from those the generated C in BUILD_DIR
    was made with: cythonize only compares timestamps, so it would reuse stale C."""
    import Cython

    stamp = hashlib.sha256(json.dumps([Cython.__version__, sorted(directives.items())]).encode()).hexdigest()
    path = os.path.join(BUILD_DIR, "directives.sha256")
    try:
        with open(path) as f:
            old = f.read().strip()
    except OSError:
        old = None
    os.makedirs(BUILD_DIR, exist_ok=True)
    with open(path, "w") as f:
        f.write(stamp)
    return old != stamp


if PURE:
    ext_modules = []
    cmdclass = {}
else:
    from Cython.Build import cythonize
    from setuptools import Extension
    from setuptools.command.build_ext import build_ext

    class BuildExtWithHint(build_ext):
        """Prints how to get the pure-Python store when the compiled one cannot be built."""

        def run(self) -> None:
            try:
                super().run()
            except Exception:
                sys.stderr.write(HINT)
                raise

    compile_args = ["-O2"] if DEBUG else ["-O2", "-g0"]
    link_args = ["-Wl,-s"] if (sys.platform.startswith("linux") and not DEBUG) else []
    directives = {
        "language_level": 3,
        "embedsignature": True,
        # __text_signature__ for the C methods (FrozenDict is compiled with binding=False), so
        # inspect.signature() reads them as it does the cyfunctions'
        "embedsignature.format": "clinic",
        "boundscheck": False,
        "wraparound": False,
    }
    try:
        ext_modules = cythonize(
            [Extension("flowctx._store", ["ext/_store.pyx"], extra_compile_args=compile_args, extra_link_args=link_args)],
            build_dir=BUILD_DIR,
            compiler_directives=directives,
            force=_directives_changed(directives),
        )
    except Exception:
        sys.stderr.write(HINT)
        raise
    cmdclass = {"build_ext": BuildExtWithHint}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
