"""Word lists and templates of the RULER-lite tasks, and the tokenizer whose vocabulary covers them.

The templates follow RULER (Hsieh et al. 2024, github.com/NVIDIA/RULER, scripts/data/synthetic/
constants.py) with three small changes, stated where they are made: "chain(s)" is written "chains"
(the tokenizer has no glued parenthesis), the frequent-words template drops the sentence about dots
(our coded text has none), and the answer prefixes end without a trailing space. The essay
haystack is generated from a small grammar: Paul Graham's essays, which RULER uses, cannot be
shipped here. Every list is fixed, so the vocabulary, and the ids of a trained model, never move.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

from .tokenizer import WordTokenizer, words_of

NEEDLE = "One of the special magic {type_v} for {key} is: {value}."
NOISE = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.")

TEMPLATES = {
    "niah": (
        "Some special magic {type_v} are hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the {type_v} afterwards.\n{context}\n"
        "What are all the special magic {type_v} for {query} mentioned in the provided text?",
        " The special magic {type_v} for {query} mentioned in the provided text are",
    ),
    "vt": (
        "Memorize and track the chains of variable assignment hidden in the following text.\n\n{context}\n"
        "Question: Find all variables that are assigned the value {query} in the text above.",
        " Answer: According to the chains of variable assignment in the text above, {num_v} variables "
        "are assigned the value {query}, they are:",
    ),
    "cwe": (
        "Below is a numbered list of words. In these words, some appear more often than others. "
        "Memorize the ones that appear most often.\n{context}\n"
        "Question: What are the {num_cw} most common words in the above list?",
        " Answer: The top {num_cw} words that appear most often in the list are:",
    ),
    "fwe": (
        "Read the following coded text and track the frequency of each coded word. "
        "Find the three most frequently appeared coded words. {context}\n"
        "Question: Do not provide any explanation. "
        "What are the three most frequently appeared words in the above coded text?",
        " Answer: According to the coded text above, the three most frequently appeared words are:",
    ),
    "qa": (
        "Answer the question based on the given documents. Only give me the answer and do not output "
        "any other words.\n\nThe following are given documents.\n\n{context}\n\n"
        "Answer the question based on the given documents. Only give me the answer and do not output "
        "any other words.\n\nQuestion: {query}",
        " Answer:",
    ),
}

def singular_niah_template() -> tuple[str, str]:
    """RULER's niah template when one value of one key is asked (num_queries * num_values == 1).

    RULER (scripts/data/synthetic/niah.py) rewrites the whole template: "Some" -> "A", "are all" -> "is",
    "are" -> "is", "answers" -> "answer", and the value type loses its plural "s" ("numbers" -> "number").
    The needles themselves keep the plural ("One of the special magic numbers for ...").
    """
    def one(text: str) -> str:
        text = text.replace("Some", "A").replace("are all", "is").replace("are", "is").replace("answers", "answer")
        return text.replace("{type_v}", "{type_v_singular}")
    return one(TEMPLATES["niah"][0]), one(TEMPLATES["niah"][1])


# Needle keys and word values (RULER draws English words; ours are fixed lists, one token each).
KEY_WORDS = tuple("""apple anchor badger banjo barrel beacon bishop blossom bucket cactus candle canyon
carpet castle cello cherry cobalt comet copper cricket dagger dolphin dragon falcon feather fiddle
garden glacier goblet granite harbor hazel helmet island jacket jasmine kettle ladder lantern lemon
lizard maple marble meadow mirror monkey nectar oyster paddle parrot pepper pillow pirate planet
quartz rabbit raven saddle salmon sparrow spider tiger tulip velvet walnut willow""".split())
VALUE_WORDS = tuple("""amber azure beige bronze chalk coral cream denim ebony emerald flax fuchsia
ginger gold indigo ivory jade khaki lilac linen mauve mint mustard navy ochre olive onyx orchid
peach pearl plum ruby rust saffron sage sand scarlet sepia sienna silver slate smoke steel taupe
teal topaz umber vanilla wine""".split())

# The generated-essay haystack: a tiny grammar, "The busy founder builds a small company slowly."
ESSAY = {
    "det": ("The", "Every", "A", "One", "Each"),
    "adj": tuple("busy quiet young clever patient bold careful curious eager honest modest proud".split()),
    "noun": tuple("founder writer student painter teacher builder investor engineer farmer doctor".split()),
    "verb": tuple("builds writes reads finds keeps sells fixes plans draws learns".split()),
    "odet": ("a", "the", "every", "some"),
    "oadj": tuple("small large strange simple useful early rough new old good".split()),
    "obj": tuple("company essay program idea machine garden house school problem theory".split()),
    "adv": tuple("slowly quickly carefully early often again today alone together well".split()),
}


def _pseudo_words(onsets: str, vowels: str, codas: str, n: int, capital: bool = False) -> tuple[str, ...]:
    """n distinct two-syllable pseudo-words, in a fixed order spread over the syllable space."""
    syllables = [o + v + c for o, v, c in itertools.product(onsets, vowels, codas)]
    pairs = list(itertools.product(syllables, syllables))
    step = max(1, len(pairs) // n)
    words = ["".join(p) for p in pairs[::step]][:n]
    return tuple(w.capitalize() for w in words) if capital else tuple(words)


# Common-words extraction draws from 512 ordinary-looking words; frequent-words from 64 coded words.
CWE_WORDS = _pseudo_words("bdfgklmnprstv", "aeiou", "lnrs", 512)
CODED_WORDS = _pseudo_words("zxqjwy", "aiou", "hkx", 64)
# Multi-document QA: invented countries, each with facts drawn from these relations.
ENTITIES = _pseudo_words("BCDFGHKLMNPRSTV", "aeiou", "nr", 256, capital=True)
CITIES = _pseudo_words("bdglmnrt", "aeo", "sx", 64, capital=True)
RELATIONS = {
    "capital": CITIES,
    "national animal": tuple("bear bison camel crane deer eagle fox goat horse lion moose otter owl seal swan wolf".split()),
    "favourite colour": ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink"),
    "main export": tuple("coffee cotton timber copper salt wool rice tea wheat sugar silk iron".split()),
}
QA_FACT = "The {relation} of {entity} is {value}."
QA_QUESTION = "What is the {relation} of {entity}?"


def all_words() -> set[str]:
    """Every word any RULER-lite template, list or grammar can write (the tokenizer's vocabulary)."""
    texts = [NEEDLE, QA_FACT, QA_QUESTION, *NOISE, "numbers words uuids VAR Document"]
    texts += [t for pair in TEMPLATES.values() for t in pair]
    texts += list(RELATIONS)
    lists = [KEY_WORDS, VALUE_WORDS, CWE_WORDS, CODED_WORDS, ENTITIES, *ESSAY.values(), *RELATIONS.values()]
    return words_of(texts) | {w for ws in lists for w in ws}


@lru_cache(maxsize=1)
def default_tokenizer() -> WordTokenizer:
    """The tokenizer of the RULER-lite tasks: every template word is one token, numbers are spelled."""
    return WordTokenizer(all_words())
