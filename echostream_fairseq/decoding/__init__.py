"""Decoding rules shared by streaming and offline decoding, below both.

* :mod:`.ctc`: greedy CTC collapse and the unit-label choice (blank penalty);
* :mod:`.text`: subword ids -> words (detokenisation, complete words);
* :mod:`.generate`: fairseq-generate's generators (imported on demand: it loads fairseq).
"""
