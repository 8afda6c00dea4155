"""EchoStream run-time data: what training, decoding and evaluation read, in StreamSpeech's layout.

Modules (imported on demand):

* ``text``      text normalisation as the multitask targets see it, unit strings
* ``audio``     wav reading/writing with clear errors (:class:`audio.AudioError`), resampling
* ``features``  80-d Kaldi fbank and global CMVN
* ``units``     the k-means log-mel unit model and the statistics a centroid vocoder needs
* ``manifests`` manifests, sentencepiece multitask folders, YAMLs, SimulEval lists
* ``validate``  manifest validation (``echostream-validate``)

Building the corpus is :mod:`echostream_fairseq.corpus`; ``data.build``, ``data.tts`` and
``data.report`` are deprecated aliases of its modules (removed in 0.2).
"""
