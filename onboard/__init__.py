"""The app: the `onboard` command and what only a command does (benchmarks, the demo, the evaluation harness).

The one composition root: it parses options, prints, configures logging and wires hardware/, policies/, robot/ and
sim/ together. Nothing imports it (``tests/test_layering.py`` checks).
"""
