"""dogfilter: a real-time, emotion-driven dog filter (capture -> detect -> classify -> composite -> display).

The code lives in the checkout's top-level folders, where the design card puts them; ``common``, ``services`` and
``commands`` here are relative symbolic links to them, so ``dogfilter.common...`` resolves from the checkout for
Python, mypy, pyright and editors alike, with or without an installation (pyproject.toml: [tool.setuptools]).
"""
