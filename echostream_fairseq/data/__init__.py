"""EchoStream data: the German->English mini corpus in StreamSpeech's layout.

Modules (imported on demand; none is needed to train or decode):

* ``text``      freedict sentence pairs, cleaning, text normalisation, unit strings
* ``audio``     wav reading/writing with clear errors (:class:`audio.AudioError`), resampling
* ``tts``       espeak-ng German source speech, piper English target speech
* ``features``  80-d Kaldi fbank and global CMVN
* ``units``     k-means log-mel units and the statistics a centroid vocoder needs
* ``manifests`` manifests, sentencepiece multitask folders, YAMLs, SimulEval lists
* ``validate``  manifest validation (``python -m echostream_fairseq.data.validate``)
* ``report``    the corpus report
* ``build``     the staged, resumable builder behind ``scripts/prepare_mini.py``
"""
