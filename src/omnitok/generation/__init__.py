"""Generation: sampling, classifier-free guidance, grammar constraints, speculative Jacobi decoding, masked
parallel decoding, best-of-N."""

from omnitok.generation.cfg import guidance_scales, guide
from omnitok.generation.constraints import StepTable, step_table
from omnitok.generation.generate import MODALITY_DEFAULTS, GenerationOutput, generate
from omnitok.generation.jacobi import decode_jacobi
from omnitok.generation.masked import decode_masked, masked_counts
from omnitok.generation.rerank import candidate_scores, span_logprob
from omnitok.generation.sampling import SamplingParams, filter_logits, probabilities, sample

__all__ = [
    "MODALITY_DEFAULTS",
    "GenerationOutput",
    "SamplingParams",
    "StepTable",
    "candidate_scores",
    "decode_jacobi",
    "decode_masked",
    "filter_logits",
    "generate",
    "guidance_scales",
    "guide",
    "masked_counts",
    "probabilities",
    "sample",
    "span_logprob",
    "step_table",
]
