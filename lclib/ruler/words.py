"""Word lists and templates of the RULER-lite tasks, and the tokenizer whose vocabulary covers them.

RULER's own (Hsieh et al. 2024, github.com/NVIDIA/RULER, scripts/data/synthetic/constants.py and the
generators), reproduced character for character: the five task templates and answer prefixes
(``TEMPLATES``, with "chain(s)", the dots sentence of the frequent-words task, and the trailing space
of the variable-tracking prefix "they are: "), the needle sentence ``NEEDLE``, the 5-sentence noise
block ``NOISE_BLOCK`` and the 40 essay depths ``DEPTHS``.

Substituted, because nothing may be downloaded here:
- RULER draws needle keys as adjective-noun pairs and common words from the `wonderwords` lists;
  ``ADJECTIVES`` and ``NOUNS`` are our fixed lists of common English words (193 in all, each one token
  of the lab's vocabulary), used the same way ("bold-falcon").
- RULER's essay haystack is Paul Graham's essays; ours is generated from a small grammar (``ESSAY``).
- RULER's QA uses SQuAD and HotpotQA; ours uses invented countries and their facts (``ENTITIES``).
- When common-words extraction needs more words than the English lists hold, RULER falls back on a
  larger English list; ours falls back on generated pseudo-words (``extra_words``).

The lab's older, cheaper lists stay available as options (``KEY_WORDS``, ``VALUE_WORDS``: one token
each; ``CWE_WORDS``, ``CODED_WORDS``). The tokenizer's vocabulary is frozen (``default_tokenizer``):
the shipped models' token ids depend on it, so words that came with RULER's texts later ("chain",
"Please", "ignore", "dots") and RULER's random coded words are spelled by its character fallback.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

from .tokenizer import WordTokenizer, words_of

NEEDLE = "One of the special magic {type_v} for {key} is: {value}."
NOISE = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.")
NOISE_BLOCK = " ".join(NOISE)  # RULER's noise haystack: this block once per line
DEPTHS = tuple(int(round(100 * i / 39)) for i in range(40))  # RULER: np.round(np.linspace(0, 100, 40)), in percent

TEMPLATES = {
    "niah": (
        "Some special magic {type_v} are hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the {type_v} afterwards.\n{context}\n"
        "What are all the special magic {type_v} for {query} mentioned in the provided text?",
        " The special magic {type_v} for {query} mentioned in the provided text are",
    ),
    "vt": (
        "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
        "Question: Find all variables that are assigned the value {query} in the text above.",
        " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables "
        "are assigned the value {query}, they are: ",
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
        "Question: Do not provide any explanation. Please ignore the dots '....'. "
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


# RULER's needle keys are adjective-noun pairs from the wonderwords lists ("long-context"); these are our
# stand-ins: 193 common English words (81 adjectives and colours, 112 nouns), 9,072 pairs. Each is one token of
# the lab's frozen vocabulary, so that a key costs 3 tokens there (the lab reads prompts of ~100 tokens).
ADJECTIVES = tuple("""amber azure beige black blue bold bronze brown busy careful chalk clever coral cream curious denim eager early
ebony emerald flax fuchsia ginger gold good green honest indigo ivory jade khaki large lilac linen mauve mint
modest mustard navy new ochre old olive onyx orange orchid patient peach pearl pink plum proud purple quiet
red rough ruby rust saffron sage sand scarlet sepia sienna silver simple slate small smoke steel strange taupe
teal topaz umber useful vanilla white wine yellow young""".split())
NOUNS = tuple("""anchor apple badger banjo barrel beacon bear bishop bison blossom bucket builder cactus camel candle canyon
carpet castle cello cherry cobalt coffee comet company copper cotton crane cricket dagger deer doctor dolphin
dragon eagle engineer essay falcon farmer feather fiddle founder fox garden glacier goat goblet granite harbor
hazel helmet horse house idea investor iron island jacket jasmine kettle ladder lantern lemon lion lizard
machine maple marble meadow mirror monkey moose nectar otter owl oyster paddle painter parrot pepper pillow
pirate planet problem program quartz rabbit raven rice saddle salmon salt school seal silk sparrow spider
student sugar swan tea teacher theory tiger timber tulip velvet walnut wheat willow wolf wool writer""".split())
# RULER's common-words vocabulary (wonderwords nouns + adjectives + verbs, deduplicated); ours has no verbs.
ENGLISH_WORDS = tuple(sorted(set(ADJECTIVES) | set(NOUNS)))

# The lab's one-token keys and word values (key_kind / value_kind "vocab_words"), in the tokenizer's vocabulary.
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


# The lab's older aggregation lists (one token each): 512 ordinary-looking words, 64 coded words.
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



@lru_cache(maxsize=1)
def extra_words() -> tuple[str, ...]:
    """20,000 pseudo-words ("balsen") for common-words lists longer than ENGLISH_WORDS, none of them English."""
    words = _pseudo_words("bdfgklmnprstvz", "aeiou", "lmnrst", 20000)
    english = set(ENGLISH_WORDS)
    return tuple(w for w in words if w not in english)


# The words of the templates as they stood when the shipped models were trained: with the lists above,
# they make the tokenizer's vocabulary, which must never move (ids of weights/effective_context).
_VOCAB_TEMPLATE_WORDS = frozenset("""According Answer Below Do Document Find Here I In Make Memorize One Only
Question Read Some The There VAR What a about above afterwards again all and animal answer any appear appeared
are assigned assignment back based blue capital chains coded colour common context cw do documents each entity
explanation export favourite following for frequency frequently give given go grass green hidden in is it key list
magic main me memorize mentioned more most national not num numbered numbers of often on ones other others output
provide provided query question quiz relation sky some special sun sure text than that the these they three to top
track type uuids v value variable variables we will within word words yellow you""".split())


def all_words() -> set[str]:
    """The tokenizer's vocabulary: the frozen template words and the lab's lists (never RULER's newer words)."""
    lists = [KEY_WORDS, VALUE_WORDS, CWE_WORDS, CODED_WORDS, ENTITIES, *ESSAY.values(), *RELATIONS.values()]
    return set(_VOCAB_TEMPLATE_WORDS) | words_of(RELATIONS) | {w for ws in lists for w in ws}


@lru_cache(maxsize=1)
def default_tokenizer() -> WordTokenizer:
    """The tokenizer of the RULER-lite tasks: template words and the lab's lists are one token each, the rest is spelled."""
    return WordTokenizer(all_words())
