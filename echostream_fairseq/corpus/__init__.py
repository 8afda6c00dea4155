"""Building the German->English mini corpus (``scripts/prepare_mini.py``); not needed to train
or decode.

Modules (imported on demand):

* ``freedict``  sentence pairs from Debian's freedict dictionaries
* ``tts``       espeak-ng German source speech, piper English target speech
* ``units``     fitting the k-means log-mel units
* ``report``    the corpus report
* ``build``     the staged, resumable builder behind ``scripts/prepare_mini.py``

The run-time data code (audio, features, manifests, validation, the unit model) is in
:mod:`echostream_fairseq.data`.
"""
