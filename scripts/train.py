#!/usr/bin/env python3
"""``echostream-train`` as a script, for existing command lines (``--help`` for its options).

The guard matters: fairseq imports ``examples.*``, and with scripts/ on ``sys.path`` that finds
``scripts/examples.py``, so importing any of these scripts must not run a command.
"""
import sys

from echostream_fairseq.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
