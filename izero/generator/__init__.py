"""Soft prompt -> instruction (and features): projection, prompts, engines, the Ray actor pool.

Layout: :mod:`~izero.generator.model` (request types and options), :mod:`~izero.generator.
projection` (the random matrix ``A``), :mod:`~izero.generator.prompts` (the generation prompt
and the clean-up), :mod:`~izero.generator.features` (INSTINCT's feature prompt),
:mod:`~izero.generator.engines` (``hf`` and ``vllm``: one model each), and
:mod:`~izero.generator.actor` (one engine per accelerator in a Ray actor, and the pool).

Public API::

    from izero.generator import GenerationRequest, InstructionGenerator, GeneratorPool

    gen = InstructionGenerator(model="tiny:llama")
    gen.generate([GenerationRequest(demos=(("cat", "cats"),), z=(0.1,) * 10)])
"""

from izero.generator.actor import GeneratorActor, GeneratorPool
from izero.generator.engines import (
    ENGINES_SERVING_FEATURES,
    GeneratorEngine,
    HFEngine,
    InstructionGenerator,
    build_engine,
)
from izero.generator.features import feature_prompt_text
from izero.generator.model import (
    DEFAULT_MODEL,
    ENGINES,
    MODEL_EOS,
    FeatureRequest,
    GenerationRequest,
    GeneratorConfig,
)
from izero.generator.projection import ProjectionConfig, RandomProjection, make_projection_matrix
from izero.generator.prompts import PromptTemplate, build_prompt_text, clean_instruction

__all__ = [
    "DEFAULT_MODEL",
    "ENGINES",
    "ENGINES_SERVING_FEATURES",
    "MODEL_EOS",
    "FeatureRequest",
    "GenerationRequest",
    "GeneratorActor",
    "GeneratorConfig",
    "GeneratorEngine",
    "GeneratorPool",
    "HFEngine",
    "InstructionGenerator",
    "ProjectionConfig",
    "PromptTemplate",
    "RandomProjection",
    "build_engine",
    "build_prompt_text",
    "clean_instruction",
    "feature_prompt_text",
    "make_projection_matrix",
]
