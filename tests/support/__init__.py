"""The test kit: a loopback fake provider and real loopback servers, kept out of the package.

Tests import it as ``support`` (pytest puts ``tests/`` on ``sys.path``); benchmarks run
``tests/support/fakeprovider.py`` by file path, so it works from a fresh clone without an
install step of its own.
"""
