"""How the simulated server answers APE's proposal prompts (offline ``ape`` runs).

A prompt in APE's forward template (:mod:`izero.blackbox.proposal_prompts`) asks for the
instruction behind some demonstrations. The simulated model finds the task from the demo inputs
it knows (a vote over its examples) and proposes, deterministically per
``(server seed, prompt, request seed, temperature)``:

- most often an *on-task* instruction naming one to three of the task's keywords (the words the
  simulated black box rewards, so it scores well, better with more of them);
- otherwise an *off-task* one: a generic instruction, or one naming another known task's
  keywords. Higher temperatures propose off-task more often.

At temperature 0 the request seed is ignored (greedy decoding has nothing to seed), so one
prompt always gets one answer; above it, each seed samples anew. Like a real model, the answer
sometimes echoes the template ("to ...", 'The instruction was to "..."') or runs on into another
demonstration, which a proposer method must clean. The sentences are keyword lists, not natural
prose: the simulated black box only counts the words.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from izero.blackbox.proposal_prompts import parse_forward_prompt
from izero.blackbox.simulated import SimulatedModel, _unit

#: Share of on-task proposals at temperature 0; it falls by ``ON_TASK_DROP_PER_T`` per unit of
#: temperature, down to ``ON_TASK_MIN``.
ON_TASK_AT_T0 = 0.85
ON_TASK_DROP_PER_T = 0.25
ON_TASK_MIN = 0.3
#: Chances that an on-task proposal names 1, 2 or 3 keywords.
KEYWORD_COUNTS = ((1, 0.25), (2, 0.35), (3, 0.40))
OPENERS = ("Write the", "Give the", "Work out the", "Find the", "Return the")
GENERIC = (
    "Repeat the input.",
    "Answer the question.",
    "Write something about the input.",
    "Copy the last part of the input.",
    "Respond with a short phrase.",
    "Describe the input in a few words.",
)
#: How a reply is dressed: plain, continuing "The instruction was" with "to ...", echoing the
#: whole sentence, or running on into another demonstration.
ECHO_STYLES = (("plain", 0.55), ("to", 0.2), ("echo", 0.15), ("run_on", 0.1))


def _pick(weighted: Sequence[tuple[Any, float]], u: float) -> Any:
    for value, weight in weighted:
        if u < weight:
            return value
        u -= weight
    return weighted[-1][0]


class SimulatedProposer:
    """Proposes instructions for APE-style prompts from what ``model`` knows.

    Args:
        model: the simulated model (its examples identify the task, its keywords make an
            instruction on-task).
        seed: the server's seed (with the request's seed and the prompt it fixes every reply).
    """

    def __init__(self, model: SimulatedModel, *, seed: int = 0):
        self.model = model
        self.seed = seed

    def reply(self, messages: Sequence[Mapping[str, str]], body: Mapping[str, Any]) -> str | None:
        """The reply to a chat request if its last message is a proposal prompt, else None."""
        if not messages:
            return None
        content = messages[-1].get("content", "")
        demos = parse_forward_prompt(content)
        if demos is None:
            return None
        temperature = float(body.get("temperature", 1.0) or 0.0)
        seed = body.get("seed")
        return self.propose(
            demos, temperature=temperature, seed=int(seed) if seed is not None else 0
        )

    def task_of(self, demos: Sequence[tuple[str, str]]) -> str | None:
        """The known task most demo inputs belong to (ties: the first name), or None."""
        votes: collections.Counter[str] = collections.Counter()
        for example_input, _ in demos:
            for known in self.model.lookup.get(example_input, ()):
                votes[known.task] += 1
        if not votes:
            return None
        return min(votes, key=lambda task: (-votes[task], task))

    def propose(self, demos: Sequence[tuple[str, str]], *, temperature: float, seed: int) -> str:
        """One proposal for ``demos`` (deterministic per prompt, seed and temperature)."""
        digest = hashlib.sha256(repr(list(demos)).encode()).hexdigest()
        sample = ("greedy",) if temperature <= 0 else (seed, round(temperature, 6))

        def u(label: str) -> float:
            return _unit(self.seed, "propose", digest, *sample, label)

        task = self.task_of(demos)
        on_task = max(ON_TASK_MIN, ON_TASK_AT_T0 - ON_TASK_DROP_PER_T * temperature)
        if task is not None and self.model.words.get(task) and u("on_task") < on_task:
            text = self._keyword_sentence(task, _pick(KEYWORD_COUNTS, u("count")), u)
        else:
            others = sorted(t for t, w in self.model.words.items() if t != task and w)
            if others and u("other_task") < 0.5:
                other = others[int(u("which") * len(others))]
                text = self._keyword_sentence(other, 2, u)
            else:
                text = GENERIC[int(u("generic") * len(GENERIC))]
        return self._dress(text, demos, _pick(ECHO_STYLES, u("style")))

    def _keyword_sentence(self, task: str, k: int, u) -> str:
        words = list(self.model.words[task])
        # a seeded shuffle: order the words by their own draw
        words.sort(key=lambda w: u(f"word:{w}"))
        chosen = words[: max(1, min(k, len(words)))]
        opener = OPENERS[int(u("opener") * len(OPENERS))]
        listed = chosen[0] if len(chosen) == 1 else ", ".join(chosen[:-1]) + " and " + chosen[-1]
        return f"{opener} {listed}."

    @staticmethod
    def _dress(text: str, demos: Sequence[tuple[str, str]], style: str) -> str:
        lowered = text[0].lower() + text[1:]
        if style == "to":
            return "to " + lowered
        if style == "echo":
            return f'The instruction was to "{lowered.rstrip(".")}".'
        if style == "run_on" and demos:
            example_input, output = demos[0]
            return f"{text}\n\nInput: {example_input}\nOutput: {output}"
        return text
