"""Soft prompt -> instruction: random projection, prompt template, batched HF generation, Ray pool.

Public API::

    from izero.generator import GenerationRequest, InstructionGenerator, GeneratorPool

    gen = InstructionGenerator(model="tiny:llama")
    gen.generate([GenerationRequest(demos=(("cat", "cats"),), z=(0.1,) * 10)])
"""

from izero.generator.actor import GeneratorActor, GeneratorPool
from izero.generator.model import (
    DEFAULT_MODEL,
    MODEL_EOS,
    GenerationRequest,
    GeneratorConfig,
    InstructionGenerator,
)
from izero.generator.projection import ProjectionConfig, RandomProjection, make_projection_matrix
from izero.generator.prompts import PromptTemplate, build_prompt_text, clean_instruction

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_EOS",
    "GenerationRequest",
    "GeneratorActor",
    "GeneratorConfig",
    "GeneratorPool",
    "InstructionGenerator",
    "ProjectionConfig",
    "PromptTemplate",
    "RandomProjection",
    "build_prompt_text",
    "clean_instruction",
    "make_projection_matrix",
]
