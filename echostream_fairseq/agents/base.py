"""Shared base of EchoStream's SimulEval agents: options, pipeline building, push/policy glue.

The agents are thin: all streaming work happens in
:class:`~echostream_fairseq.streaming.pipeline.StreamingS2STPipeline`. ``push`` feeds each new
source segment straight into the pipeline (SimulEval's ``AgentStates.source`` list of floats is
not grown), and ``policy`` turns the resulting :class:`StepOutput` into one action.
"""

from __future__ import annotations

import logging
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from simuleval.agents import GenericAgent
from simuleval.agents.actions import Action, ReadAction, WriteAction
from simuleval.agents.states import AgentStates
from simuleval.data.segments import Segment

from echostream_fairseq.cli.common import add_num_threads_argument
from echostream_fairseq.streaming.config import (
    PipelineConfig,
    add_pipeline_arguments,
    segment_length_for_chunk,
)
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint
from echostream_fairseq.streaming.pipeline import StepOutput, StreamingS2STPipeline

logger = logging.getLogger(__name__)

# segment_length_for_chunk lives in streaming.config; re-exported for code that imported it here
__all__ = ["EXTRA_OUTPUTS", "EchoStreamAgentBase", "segment_length_for_chunk"]

#: the files of --extra-output-dir: StreamSpeech's agents' names (final ASR, translation, units)
EXTRA_OUTPUTS = ("asr", "st", "unit")


class EchoStreamAgentBase(GenericAgent):
    """Base agent; subclasses set SimulEval's types, ``needs_speech`` and :meth:`make_content`."""

    #: whether the pipeline must run T2U, the unit decoder and the vocoder
    needs_speech = False

    def __init__(self, args: Namespace) -> None:
        torch.set_num_threads(args.num_threads)  # more threads are slower on shared CPUs
        self.pipeline = self.build_pipeline(args)
        self._output: Optional[StepOutput] = None
        self._extra_output_dir = Path(args.extra_output_dir) if args.extra_output_dir else None
        if self._extra_output_dir is not None:
            self._extra_output_dir.mkdir(parents=True, exist_ok=True)
        self._written: Dict[str, List[str]] = {name: [] for name in EXTRA_OUTPUTS}
        super().__init__(args)

    @staticmethod
    def add_args(parser: ArgumentParser) -> None:
        a = parser.add_argument
        a("--checkpoint", required=True, help="EchoStream fairseq checkpoint (.pt) to stream with")
        a("--data-dir", default=None, help="corpus folder with the configs and dictionaries "
          "(default: the data path saved in the checkpoint)")
        a("--vocoder-config", default=None, help="data config naming the vocoder "
          "(default: the corpus' config_gcmvn.yaml / embedded vocoder)")
        a("--extra-output-dir", default=None, help="append each input's streaming ASR, translation "
          "and units, as written, to asr.txt, st.txt and unit.txt here, a line each (as "
          "StreamSpeech's agents do)")
        add_pipeline_arguments(parser)
        add_num_threads_argument(parser, "torch CPU threads of the agent")

    @classmethod
    def build_pipeline(cls, args: Namespace) -> StreamingS2STPipeline:
        model, task = load_checkpoint(args.checkpoint, args.data_dir)
        config = PipelineConfig.from_args(args, speech=cls.needs_speech)
        config = config.for_chunk(model, args.source_segment_size)
        logger.info("streaming with %s", config)
        return StreamingS2STPipeline.from_task(model, task, config, args.vocoder_config)

    def reset(self) -> None:
        super().reset()
        self.pipeline.reset()
        self._output = None
        self._written = {name: [] for name in EXTRA_OUTPUTS}

    def _record(self, output: Optional[StepOutput]) -> None:
        """Keep what the step wrote; at the end of the input, append it to the extra outputs."""
        if output is None or self._extra_output_dir is None:
            return
        self._written["asr"].append(output.asr_text)
        self._written["st"].append(output.target_text)
        self._written["unit"].append(" ".join(map(str, output.units)))
        if output.finished:
            for name, pieces in self._written.items():
                with open(self._extra_output_dir / f"{name}.txt", "a") as handle:
                    handle.write(" ".join(" ".join(pieces).split()) + "\n")

    def push(self, source_segment: Segment, states: Optional[AgentStates] = None,
             upstream_states: Optional[List[AgentStates]] = None) -> None:
        if states is not None:
            raise RuntimeError(f"{type(self).__name__} is stateful: it keeps its pipeline's state")
        self.states.source_finished = source_segment.finished
        if self.states.target_finished:
            return  # SimulEval may push an empty finished segment after the last write
        samples = np.asarray(source_segment.content if not source_segment.is_empty else [],
                             dtype=np.float32)
        rate = getattr(source_segment, "sample_rate", -1)  # EmptySegment has no rate
        rate = rate if rate > 0 else None
        if source_segment.finished:
            self._output = self.pipeline.finish(samples, rate)
        elif samples.size:
            self._output = self.pipeline.push(samples, rate)
        else:
            self._output = None
        self._record(self._output)

    def policy(self) -> Action:
        output, self._output = self._output, None
        if output is None:
            return ReadAction()
        content = self.make_content(output)
        if content is None and not output.finished:
            return ReadAction()
        if output.finished:
            self.states.target_finished = True
        return WriteAction(content if content is not None else self.empty_content(output),
                           finished=output.finished)

    def make_content(self, output: StepOutput) -> Any:
        """The new content of a step, or None when there is nothing new."""
        raise NotImplementedError

    def empty_content(self, output: StepOutput) -> Any:
        """What a final step with nothing new writes."""
        raise NotImplementedError
