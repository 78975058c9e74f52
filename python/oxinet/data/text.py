"""Seeded text sets made with the standard library: date-format translation pairs, a
character-level word corpus and a sentiment-labelled sentence corpus, plus a small
character/word vocabulary helper for turning them into integer arrays.

Nothing here is copied text: every string comes from the grammars in this file.
"""

from __future__ import annotations

import datetime as _dt
import operator
from typing import Iterable, Sequence

import numpy as np

from oxinet.data._rng import make_generator

__all__ = [
    "make_dates",
    "DATE_FORMATS",
    "make_words",
    "make_sentiment",
    "SENTIMENT_LEXICON",
    "NEGATIONS",
    "Vocab",
]

# Fixed English names (not the locale's), so the output never depends on the machine.
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _ordinal(d: int) -> str:
    suffix = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


def _fields(day: _dt.date) -> dict:
    month, wd = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    return {
        "d": str(day.day), "dd": f"{day.day:02d}", "do": _ordinal(day.day),
        "m": str(day.month), "mm": f"{day.month:02d}",
        "yyyy": f"{day.year:04d}", "yy": f"{day.year % 100:02d}",
        "month": month, "Month": month.capitalize(), "MONTH": month.upper(),
        "mon": month[:3], "Mon": month[:3].capitalize(), "MON": month[:3].upper(),
        "wd": wd, "Wd": wd.capitalize(), "wdd": wd[:3], "Wdd": wd[:3].capitalize(),
    }


#: Human-readable formats (``str.format`` fields from the date). Slashes are US order
#: (month/day/year), dots are European (day.month.year); two-digit years ``yy`` stand for
#: 1950..2049 (``yy >= 50`` -> 19yy, else 20yy).
DATE_FORMATS = (
    "{wd}, {month} {d} {yyyy}",        # tuesday, march 3 1987
    "{Wd}, {Month} {d}, {yyyy}",       # Tuesday, March 3, 1987
    "{m}/{d}/{yy}",                    # 3/3/87
    "{mm}/{dd}/{yyyy}",                # 03/03/1987
    "{dd} {MON} {yyyy}",               # 03 MAR 1987
    "{d} {mon} {yyyy}",                # 3 mar 1987
    "{Mon} {d} {yyyy}",                # Mar 3 1987
    "{month} {d}, {yyyy}",             # march 3, 1987
    "{d} {Month} {yyyy}",              # 3 March 1987
    "{d} {month} {yy}",                # 3 march 87
    "{dd}.{mm}.{yyyy}",                # 03.03.1987
    "{d}.{m}.{yy}",                    # 3.3.87
    "{do} of {month} {yyyy}",          # 3rd of march 1987
    "{wdd} {d} {mon} {yyyy}",          # tue 3 mar 1987
    "{Wd} {dd} {Month} {yyyy}",        # Tuesday 03 March 1987
    "{MONTH} {d} {yyyy}",              # MARCH 3 1987
    "{yyyy} {month} {d}",              # 1987 march 3
)

_FIRST_DAY = _dt.date(1950, 1, 1).toordinal()
_LAST_DAY = _dt.date(2049, 12, 31).toordinal()


def make_dates(n_pairs: int = 10000, lowercase: bool = True, seed=0) -> list[tuple[str, str]]:
    """Pairs ``(human_readable, iso)`` for the course's date-translation attention model,
    e.g. ``("tuesday, march 3 1987", "1987-03-03")``.

    Generating process: each date is drawn uniformly from 1950-01-01 .. 2049-12-31 and
    written in one of :data:`DATE_FORMATS` drawn uniformly (English month and weekday names
    from fixed tables, independent of the locale); ``lowercase`` lowercases the human side.
    The machine side is always ``YYYY-MM-DD``. Pairs may repeat.
    """
    who = "make_dates"
    n = operator.index(n_pairs)
    if n < 0:
        raise ValueError(f"{who}: 'n_pairs' must be >= 0, got {n}")
    rng = make_generator(seed, who)
    days = rng.integers(_FIRST_DAY, _LAST_DAY + 1, size=n)
    fmts = rng.integers(0, len(DATE_FORMATS), size=n)
    out = []
    for o, f in zip(days.tolist(), fmts.tolist()):
        day = _dt.date.fromordinal(o)
        human = DATE_FORMATS[f].format(**_fields(day))
        out.append((human.lower() if lowercase else human, day.isoformat()))
    return out


# --- a syllable grammar for name-like words ---------------------------------------------

_ONSETS = (
    "b", "br", "c", "cr", "d", "dr", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pr",
    "qu", "r", "s", "sk", "st", "t", "tr", "v", "z", "th", "ch", "ph", "x", "", "",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "ae", "ia", "y", "ou", "eo", "au")
_CODAS = ("", "", "", "", "n", "r", "s", "l", "x", "m", "nt", "rk", "ng", "st")
_DINO_SUFFIXES = (
    "saurus", "don", "raptor", "ceratops", "tops", "nyx", "mimus", "venator", "suchus",
    "odon", "pteryx", "titan", "gnathus", "lophus", "rex", "ornis",
)
_NAME_SUFFIXES = ("a", "o", "an", "en", "ia", "us", "ar", "iel", "wyn", "eth", "ora", "ius", "ine", "ric")


def _syllable(rng) -> str:
    return (
        _ONSETS[rng.integers(len(_ONSETS))]
        + _VOWELS[rng.integers(len(_VOWELS))]
        + _CODAS[rng.integers(len(_CODAS))]
    )


def make_words(n_words: int = 3000, kind: str = "dino", seed=0) -> list[str]:
    """Distinct lowercase name-like words for a character-level language model.

    Generating process: a word is 1-3 syllables (probabilities 0.3/0.5/0.2), each an
    onset + vowel + coda drawn uniformly from small tables, followed by a suffix drawn from
    a dinosaur-like (``kind='dino'``: "saurus", "raptor", "tops", ...) or person-name-like
    (``kind='name'``) table; letters tripled by the join are reduced to two. Duplicates are
    redrawn, so the list holds ``n_words`` distinct words in order of generation.
    """
    who = "make_words"
    n = operator.index(n_words)
    if n < 0:
        raise ValueError(f"{who}: 'n_words' must be >= 0, got {n}")
    if kind not in ("dino", "name"):
        raise ValueError(f"{who}: 'kind' must be 'dino' or 'name', got {kind!r}")
    suffixes = _DINO_SUFFIXES if kind == "dino" else _NAME_SUFFIXES
    rng = make_generator(seed, who)
    seen: set[str] = set()
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"{who}: cannot make {n} distinct words from the grammar (got {len(out)})")
        k = int(rng.choice([1, 2, 3], p=[0.3, 0.5, 0.2]))
        w = "".join(_syllable(rng) for _ in range(k)) + suffixes[rng.integers(len(suffixes))]
        for ch in set(w):  # no letter three times in a row
            while ch * 3 in w:
                w = w.replace(ch * 3, ch * 2)
        if len(w) < 3 or w in seen:
            continue
        seen.add(w)
        out.append(w)
    return out


# --- a template grammar for sentiment sentences ------------------------------------------

#: Polar words used by :func:`make_sentiment` (every sentence contains exactly one polar
#: adjective or verb, or two adjectives of the same polarity joined by "and").
SENTIMENT_LEXICON = {
    "positive": (
        "good", "great", "excellent", "wonderful", "amazing", "delightful", "fantastic",
        "pleasant", "superb", "lovely", "enjoyable", "brilliant",
        "love", "like", "enjoy", "admire", "loved", "liked", "enjoyed", "admired",
    ),
    "negative": (
        "bad", "terrible", "awful", "boring", "horrible", "disappointing", "dreadful",
        "poor", "mediocre", "annoying", "dull", "unpleasant",
        "hate", "dislike", "regret", "despise", "hated", "disliked", "regretted", "despised",
    ),
}
#: Negation tokens: a sentence with one of them (or a word ending in "n't") has the
#: opposite label of its polar words.
NEGATIONS = ("not", "never", "n't")

_POS_ADJ = SENTIMENT_LEXICON["positive"][:12]
_NEG_ADJ = SENTIMENT_LEXICON["negative"][:12]
_POS_VERBS = (("love", "loved"), ("like", "liked"), ("enjoy", "enjoyed"), ("admire", "admired"))
_NEG_VERBS = (("hate", "hated"), ("dislike", "disliked"), ("regret", "regretted"), ("despise", "despised"))
_SUBJECTS = (
    "the movie", "this film", "the food", "the service", "my new phone", "the hotel room",
    "the book", "the staff", "the concert", "this game", "the coffee", "our trip",
    "the show", "the pizza", "the museum", "the lecture", "this album", "the park",
    "the train ride", "the dessert",
)
_INTENSIFIERS = ("", "", "really ", "very ", "truly ", "quite ", "so ", "extremely ")


def make_sentiment(n_sentences: int = 2000, seed=0) -> tuple[list[str], np.ndarray]:
    """Short review-like sentences with binary sentiment labels (1 positive, 0 negative).

    Generating process: a polarity (positive/negative) and a negation flag (probability
    0.3) are drawn, then one template, uniformly:

    * ``"<subject> <is|was> [not ]<intensifier><adjective>"`` (negated forms also use
      ``"isn't"``, ``"wasn't"``, ``"was never"``),
    * ``"<subject> <is|was> [not ]<adj> and <adj>"`` (two adjectives of the polarity),
    * ``"i <verb, past> <subject>"`` / ``"i <didn't|did not|never> <verb> <subject>"``,
    * ``"i <really >[do not ]<verb> <subject>"`` (present tense),
    * ``"what a[n] <adjective> experience"`` (never negated).

    Adjectives and verbs come from :data:`SENTIMENT_LEXICON`. The label is the polarity,
    flipped when the sentence is negated, so a negated positive word is negative.
    Returns ``(sentences, labels)`` with labels int64 ``(n_sentences,)``.
    """
    who = "make_sentiment"
    n = operator.index(n_sentences)
    if n < 0:
        raise ValueError(f"{who}: 'n_sentences' must be >= 0, got {n}")
    rng = make_generator(seed, who)

    def pick(seq):
        return seq[rng.integers(len(seq))]

    sentences, labels = [], []
    for _ in range(n):
        positive = bool(rng.random() < 0.5)
        negated = bool(rng.random() < 0.3)
        adjs = _POS_ADJ if positive else _NEG_ADJ
        verbs = _POS_VERBS if positive else _NEG_VERBS
        subj = pick(_SUBJECTS)
        template = int(rng.integers(5))
        if template == 4:
            negated = False
            adj = pick(adjs)
            art = "an" if adj[0] in "aeiou" else "a"
            s = f"what {art} {adj} experience"
        elif template in (0, 1):
            cop = pick(("is", "was"))
            if negated:
                cop = pick((f"{cop} not", f"{cop}n't", "was never"))
            if template == 0:
                s = f"{subj} {cop} {pick(_INTENSIFIERS)}{pick(adjs)}"
            else:
                a1, a2 = rng.choice(len(adjs), size=2, replace=False)
                s = f"{subj} {cop} {adjs[a1]} and {adjs[a2]}"
        elif template == 2:
            base, past = pick(verbs)
            if negated:
                s = f"i {pick(('didn', 'did not', 'never'))} {base} {subj}"
                s = s.replace("didn ", "didn't ")
            else:
                s = f"i {past} {subj}"
        else:
            base, _ = pick(verbs)
            neg = pick(("do not ", "don't ")) if negated else ""
            s = f"i {pick(('', 'really ', 'truly '))}{neg}{base} {subj}"
        sentences.append(s)
        labels.append(int(positive != negated))
    return sentences, np.asarray(labels, np.int64)


# --- vocabularies -------------------------------------------------------------------------


class Vocab:
    """A token <-> index table for characters or words.

    ``Vocab.from_texts(texts, level="char")`` collects the sorted distinct tokens after the
    ``specials`` (default ``("<pad>", "<unk>")``: index 0 pads, index 1 stands for unknown
    tokens). ``encode`` turns a list of texts into an int64 array ``(N, length)`` padded
    (or cut) to ``length``; ``decode`` inverts it, stopping at padding.
    """

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = ("<pad>", "<unk>"), level: str = "char"):
        if level not in ("char", "word"):
            raise ValueError(f"Vocab: 'level' must be 'char' or 'word', got {level!r}")
        self.level = level
        self.specials = tuple(specials)
        self.itos = list(self.specials) + [t for t in tokens if t not in self.specials]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocab: 'tokens' contains duplicates")
        self.pad_index = self.stoi.get("<pad>")
        self.unk_index = self.stoi.get("<unk>")

    @classmethod
    def from_texts(cls, texts: Iterable[str], level: str = "char", specials=("<pad>", "<unk>")) -> "Vocab":
        toks: set[str] = set()
        for t in texts:
            toks.update(t if level == "char" else t.split())
        return cls(sorted(toks), specials, level)

    def __len__(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else text.split()

    def encode(self, texts: Sequence[str], length: int | None = None) -> np.ndarray:
        toks = [self.tokenize(t) for t in texts]
        if length is None:
            length = max((len(t) for t in toks), default=0)
        if self.pad_index is None:
            raise ValueError("Vocab.encode: padding needs a '<pad>' special token")
        out = np.full((len(toks), length), self.pad_index, np.int64)
        for i, t in enumerate(toks):
            ids = []
            for tok in t[:length]:
                j = self.stoi.get(tok, self.unk_index)
                if j is None:
                    raise KeyError(f"Vocab.encode: token {tok!r} is not in the vocabulary and there is no '<unk>'")
                ids.append(j)
            out[i, : len(ids)] = ids
        return out

    def decode(self, ids) -> list[str]:
        ids = np.atleast_2d(np.asarray(ids))
        sep = "" if self.level == "char" else " "
        out = []
        for row in ids:
            toks = []
            for j in row.tolist():
                if j == self.pad_index:
                    break
                toks.append(self.itos[j])
            out.append(sep.join(toks))
        return out

    def __repr__(self) -> str:
        return f"Vocab({len(self)} {self.level} tokens)"
