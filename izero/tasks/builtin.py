"""Built-in tasks: programmatic instruction-induction tasks generated from a seed, no data file.

Each task draws distinct inputs from a seeded :class:`random.Random`, in the same input/output
format as the upstream data (``sum``: ``"23 41"`` -> ``"64"``; ``word_sorting``:
``"\\nList: b a\\n"`` -> ``"a b"``; ...), and knows its correct answers (:meth:`BuiltinTask.solve`),
words that describe it (``keywords``, for a simulated black box) and human-style reference
instructions (``annotations``, for the ``manual`` baseline).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

from izero.errors import TaskDataError
from izero.tasks._words import ANIMAL_MASS_KG, IRREGULAR_PLURALS, NOUNS
from izero.tasks.metrics import metric_for_task
from izero.tasks.types import Example, Task

#: Seed of the examples of a built-in task when none is given.
BUILTIN_SEED = 0
#: Default number of induce examples (demos and dev are drawn from these).
BUILTIN_N_INDUCE = 100
#: Default number of execute (test) examples.
BUILTIN_N_EXECUTE = 100
#: Number range of sum/diff operands (inclusive), as upstream.
MAX_OPERAND = 99
#: Largest number of num_to_verbal, as upstream.
MAX_VERBAL_NUMBER = 9999
#: Word count range of a word_sorting list.
SORTING_MIN_WORDS, SORTING_MAX_WORDS = 4, 12
#: larger_animal only pairs animals whose typical masses differ at least this much.
LARGER_ANIMAL_MIN_RATIO = 2.0
#: Attempts per wanted example before giving up on drawing distinct inputs.
_DRAW_ATTEMPTS = 50


@dataclass(frozen=True)
class BuiltinTask:
    """A task izero generates itself.

    ``draw(rng) -> input`` draws one input; ``solve(input) -> answers`` gives every accepted
    answer (the first is canonical).
    """

    name: str
    keywords: tuple[str, ...]
    annotations: tuple[str, ...]
    draw: Callable[[random.Random], str]
    solver: Callable[[str], tuple[str, ...]]

    def solve(self, text: str) -> tuple[str, ...]:
        """All accepted answers for input ``text`` (canonical answer first)."""
        return self.solver(text)

    def make_task(
        self,
        *,
        seed: int = BUILTIN_SEED,
        n_induce: int = BUILTIN_N_INDUCE,
        n_execute: int = BUILTIN_N_EXECUTE,
    ) -> Task:
        """Generate ``n_induce + n_execute`` examples with distinct inputs from ``seed``.

        Raises:
            TaskDataError: the task cannot produce that many distinct inputs.
        """
        if n_induce < 1 or n_execute < 0:
            raise TaskDataError(
                f"built-in task {self.name!r}: got n_induce={n_induce}, n_execute={n_execute}; "
                "expected n_induce >= 1 and n_execute >= 0"
            )
        rng = random.Random(f"izero-builtin:{self.name}:{seed}")
        wanted = n_induce + n_execute
        seen: dict[str, None] = {}
        for _ in range(wanted * _DRAW_ATTEMPTS):
            if len(seen) == wanted:
                break
            seen.setdefault(self.draw(rng), None)
        if len(seen) < wanted:
            raise TaskDataError(
                f"built-in task {self.name!r} produced only {len(seen)} distinct inputs, "
                f"{wanted} were asked for. Fix: ask for fewer examples"
            )
        examples = tuple(Example(input=x, answers=self.solve(x)) for x in seen)
        return Task(
            name=self.name,
            metric=metric_for_task(self.name),
            induce=examples[:n_induce],
            execute=examples[n_induce:],
            annotations=self.annotations,
            source="builtin",
        )


# ----------------------------------------------------------------------------- helpers

_ONES_TEXT = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS_TEXT = "_ _ twenty thirty forty fifty sixty seventy eighty ninety"
_ONES = _ONES_TEXT.split()
_TENS = _TENS_TEXT.split()


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _below_hundred(rest)
    text = f"{_ONES[hundreds]} hundred"
    return text + (f" and {_below_hundred(rest)}" if rest else "")


def number_to_words(n: int) -> str:
    """British English words for ``0 <= n <= 9999`` as upstream writes them.

    ``1049`` -> ``"one thousand and forty-nine"``, ``2231`` -> ``"two thousand, two hundred and
    thirty-one"``.
    """
    if not 0 <= n <= MAX_VERBAL_NUMBER:
        raise ValueError(f"number_to_words supports 0..{MAX_VERBAL_NUMBER}, got {n}")
    thousands, rest = divmod(n, 1000)
    if not thousands:
        return _below_thousand(rest)
    text = f"{_ONES[thousands]} thousand"
    if not rest:
        return text
    if rest < 100:
        return f"{text} and {_below_hundred(rest)}"
    return f"{text}, {_below_thousand(rest)}"


def pluralize(noun: str) -> str:
    """The plural of an English noun (irregular table, then spelling rules)."""
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _two_numbers(text: str) -> tuple[int, int]:
    a, b = text.split()
    return int(a), int(b)


def _word(rng: random.Random) -> str:
    return rng.choice(NOUNS)


def _draw_sum(rng: random.Random) -> str:
    return f"{rng.randint(0, MAX_OPERAND)} {rng.randint(0, MAX_OPERAND)}"


def _draw_diff(rng: random.Random) -> str:
    x, y = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
    return f"{x + y} {x}"


def _draw_sorting(rng: random.Random) -> str:
    k = rng.randint(SORTING_MIN_WORDS, SORTING_MAX_WORDS)
    return "\nList: " + " ".join(rng.sample(NOUNS, k)) + "\n"


def _solve_sorting(text: str) -> tuple[str, ...]:
    words = text.strip().removeprefix("List:").split()
    return (" ".join(sorted(words)),)


@functools.cache
def _animal_pairs() -> tuple[tuple[str, str], ...]:
    """Ordered pairs of animals whose masses differ by :data:`LARGER_ANIMAL_MIN_RATIO` or more."""
    names = sorted(ANIMAL_MASS_KG)
    pairs = []
    for a in names:
        for b in names:
            lo, hi = sorted((ANIMAL_MASS_KG[a], ANIMAL_MASS_KG[b]))
            if a != b and hi >= LARGER_ANIMAL_MIN_RATIO * lo:
                pairs.append((a, b))
    return tuple(pairs)


def _draw_animals(rng: random.Random) -> str:
    a, b = rng.choice(_animal_pairs())
    return f"{a}, {b}"


def _solve_animals(text: str) -> tuple[str, ...]:
    a, b = (s.strip() for s in text.split(",", 1))
    return (a if ANIMAL_MASS_KG[a] > ANIMAL_MASS_KG[b] else b,)


def _draw_scrambled(rng: random.Random) -> str:
    word = rng.choice([w for w in NOUNS if len(set(w)) > 1])
    letters = list(word)
    while "".join(letters) == word:
        rng.shuffle(letters)
    return "".join(letters)


def _solve_scrambled(text: str) -> tuple[str, ...]:
    key = sorted(text)
    found = tuple(w for w in NOUNS if sorted(w) == key)
    return found or (text,)


def _solve_verbal(text: str) -> tuple[str, ...]:
    return (number_to_words(int(text)),)


# ----------------------------------------------------------------------------- registry

_TASK_LIST = (
    BuiltinTask(
        name="sum",
        keywords=("sum", "add", "plus", "addition", "total"),
        annotations=(
            "Add the two numbers.",
            "Write the sum of the two numbers in the input.",
            "Output the result of adding the pair of numbers.",
            "You get two numbers; answer with their sum.",
        ),
        draw=_draw_sum,
        solver=lambda t: (str(sum(_two_numbers(t))),),
    ),
    BuiltinTask(
        name="diff",
        keywords=("difference", "subtract", "minus", "subtraction"),
        annotations=(
            "Subtract the second number from the first.",
            "Write the difference of the two numbers.",
            "Output the first number minus the second number.",
            "Compute how much larger the first number is than the second.",
        ),
        draw=_draw_diff,
        solver=lambda t: (str(_two_numbers(t)[0] - _two_numbers(t)[1]),),
    ),
    BuiltinTask(
        name="first_word_letter",
        keywords=("first", "letter", "initial", "character"),
        annotations=(
            "Write the first letter of the word.",
            "Output the first character of the input word.",
            "Extract the initial letter of the given word.",
            "What letter does the word start with?",
        ),
        draw=_word,
        solver=lambda t: (t.strip()[:1],),
    ),
    BuiltinTask(
        name="second_word_letter",
        keywords=("second", "letter", "character"),
        annotations=(
            "Write the second letter of the word.",
            "Output the second character of the input word.",
            "Extract the letter in second position of the given word.",
            "Which letter comes second in the word?",
        ),
        draw=_word,
        solver=lambda t: (t.strip()[1:2],),
    ),
    BuiltinTask(
        name="letters_list",
        keywords=("spell", "letters", "space", "separate", "characters"),
        annotations=(
            "Spell the word with a space between the letters.",
            "Write the input word with a space between each of its letters.",
            "Break the word into its letters, separated by spaces.",
            "Output every character of the word, separated by single spaces.",
        ),
        draw=_word,
        solver=lambda t: (" ".join(t.strip()),),
    ),
    BuiltinTask(
        name="word_sorting",
        keywords=("sort", "alphabetical", "order", "alphabetize"),
        annotations=(
            "Sort the words in alphabetical order.",
            "Write the list of words sorted alphabetically.",
            "Put the words of the list in alphabetical order.",
            "Alphabetize the given list of words.",
        ),
        draw=_draw_sorting,
        solver=_solve_sorting,
    ),
    BuiltinTask(
        name="num_to_verbal",
        keywords=("words", "spell", "write", "number", "english"),
        annotations=(
            "Write the number in English words.",
            "Spell out the number in words.",
            "Output how the number is said in English, without digits.",
            "Write the input number with words.",
        ),
        draw=lambda rng: str(rng.randint(0, MAX_VERBAL_NUMBER)),
        solver=_solve_verbal,
    ),
    BuiltinTask(
        name="singular_to_plural",
        keywords=("plural", "plurals", "pluralize"),
        annotations=(
            "Write the plural of the word.",
            "Output the plural form of the input noun.",
            "Turn the singular noun into its plural.",
            "Give the plural form of each word.",
        ),
        draw=_word,
        solver=lambda t: (pluralize(t.strip()),),
    ),
    BuiltinTask(
        name="larger_animal",
        keywords=("larger", "bigger", "animal", "heavier"),
        annotations=(
            "Write the larger of the two animals.",
            "Output which of the two animals is bigger.",
            "Name the bigger animal of the pair.",
            "Which animal is larger?",
        ),
        draw=_draw_animals,
        solver=_solve_animals,
    ),
    BuiltinTask(
        name="word_unscrambling",
        keywords=("unscramble", "rearrange", "anagram", "scrambled"),
        annotations=(
            "Unscramble the letters into a word.",
            "Rearrange the letters to form an English word.",
            "The input is a scrambled word; write the word.",
            "Find the word whose letters were shuffled.",
        ),
        draw=_draw_scrambled,
        solver=_solve_scrambled,
    ),
)

#: Every built-in task by name.
BUILTIN_TASKS: dict[str, BuiltinTask] = {t.name: t for t in _TASK_LIST}
