"""Build script: compiles ext/_store.pyx into flowctx._store.

A compile error fails the install: there is no silent fallback to the pure-Python twin at build
time.  Set FLOWCTX_PURE_PYTHON=1 to build a pure (py3-none-any) package on purpose; use
``pip install --no-cache-dir`` when switching, or pip's wheel cache may hand back the other build.
"""
import os

from setuptools import setup

PURE = os.environ.get("FLOWCTX_PURE_PYTHON", "") not in ("", "0")

if PURE:
    ext_modules = []
else:
    from Cython.Build import cythonize
    from setuptools import Extension

    ext_modules = cythonize(
        [Extension("flowctx._store", ["ext/_store.pyx"], extra_compile_args=["-O2"])],
        build_dir="build/cython",
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            # __text_signature__ for the C methods (FrozenDict is compiled with binding=False),
            # so inspect.signature() reads them as it does the cyfunctions'
            "embedsignature.format": "clinic",
            "boundscheck": False,
            "wraparound": False,
        },
    )

setup(ext_modules=ext_modules)
