"""EchoStream's command-line programs, one module per command (``main(argv) -> int``).

Each is installed as a console script (``setup.py``), e.g. ``echostream-evaluate`` is
:func:`echostream_fairseq.cli.evaluate.main`; ``scripts/*.py`` are thin wrappers kept for the
seed's ``python scripts/train.py`` and ``python scripts/evaluate.py`` command lines. Every option
name comes from one vocabulary (:mod:`echostream_fairseq.cli.vocabulary`), and every command
reports bad input the same way (:mod:`echostream_fairseq.cli.common`).
"""
