"""StreamSpeech's model trained by fairseq's own ``fairseq-train`` (same arguments), with the shims
of :mod:`streamspeech_shims` applied first: a resumed run must load its ``checkpoint_last.pt``."""

import sys

import streamspeech_shims

if __name__ == "__main__":
    streamspeech_shims.install()
    from fairseq_cli.train import cli_main

    sys.argv[0] = "fairseq-train"
    sys.exit(cli_main())
