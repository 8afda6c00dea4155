#!/usr/bin/env python3
"""Build the German->English mini corpus in StreamSpeech's layout (``make corpus``).

Examples::

    python scripts/prepare_mini.py --data-dir data                 # full corpus, ~10k pairs
    python scripts/prepare_mini.py --data-dir /tmp/tiny --max-pairs 20

Re-running resumes: finished stages and utterances are skipped. See
``echostream_fairseq/data/build.py`` for the stages and ``--help`` for every flag.
"""

import sys

from echostream_fairseq.data.build import main

if __name__ == "__main__":
    sys.exit(main())
