"""BLEU against the course's worked example (INVENTORY F62, E7) and hand computations."""

import math

import pytest

from oxinet.text import corpus_bleu, modified_precision, sentence_bleu, simple_tokenize, brevity_penalty, ngrams

REF1 = "The cat is on the mat."
REF2 = "There is a cat on the mat."


def test_tokenize():
    assert simple_tokenize(REF1) == ["the", "cat", "is", "on", "the", "mat"]


def test_course_unigram_example():
    # "the the the the the the the": plain precision 7/7, modified 2/7
    assert modified_precision("the the the the the the the", [REF1, REF2], 1) == (2, 7)


def test_course_bigram_example():
    # "The cat the cat on the mat": bigram clipped counts 1+0+1+1+1 of 6 -> 4/6
    assert modified_precision("The cat the cat on the mat", [REF1, REF2], 2) == (4, 6)
    assert ngrams(simple_tokenize("The cat the cat on the mat"), 2)[("the", "cat")] == 2


def test_sentence_bleu_hand_computed():
    cand = "The cat the cat on the mat"
    # p1 = 5/7 (the clipped to 2), p2 = 4/6, p3 = 2/5 (cat on the, on the mat), p4 = 1/4 (cat on the mat)
    # c = 7, closest reference length 7 -> BP = 1
    want = math.exp(0.25 * (math.log(5 / 7) + math.log(4 / 6) + math.log(2 / 5) + math.log(1 / 4)))
    assert sentence_bleu(cand, [REF1, REF2]) == pytest.approx(want, rel=1e-12)
    assert modified_precision(cand, [REF1, REF2], 3) == (2, 5)
    assert modified_precision(cand, [REF1, REF2], 4) == (1, 4)


def test_perfect_match_is_one_and_tokens_accepted():
    assert sentence_bleu(REF1, [REF1, REF2]) == pytest.approx(1.0)
    toks = simple_tokenize(REF2)
    assert sentence_bleu(toks, [toks]) == pytest.approx(1.0)


def test_brevity_penalty():
    assert brevity_penalty(7, 6) == 1.0
    assert brevity_penalty(3, 6) == pytest.approx(math.exp(-1))
    assert brevity_penalty(0, 6) == 0.0
    # "the cat" against refs of lengths 6 and 7: r = 6, p1 = p2 = 1 -> BLEU-2 = exp(1 - 6/2)
    assert sentence_bleu("the cat", [REF1, REF2], max_n=2) == pytest.approx(math.exp(-2))


def test_zero_precision_and_smoothing():
    # no 4-gram matches: plain BLEU is 0, smoothed BLEU is positive
    cand = "the mat is a cat"
    assert sentence_bleu(cand, [REF1, REF2]) == 0.0
    eps = sentence_bleu(cand, [REF1, REF2], smoothing="epsilon", epsilon=0.1)
    # p1 = 5/5, p2: the mat(1) mat is(0) is a(1) a cat(1) -> 3/4, p3: is a cat -> 1/3, p4: 0/2 -> 0.1/2
    r = 6
    want = math.exp(1 - r / 5) * math.exp(0.25 * (math.log(1) + math.log(3 / 4) + math.log(1 / 3)
                                                   + math.log(0.1 / 2)))
    assert eps == pytest.approx(want, rel=1e-12)
    add1 = sentence_bleu(cand, [REF1, REF2], smoothing="add1")
    want1 = math.exp(1 - r / 5) * math.exp(0.25 * (math.log(1) + math.log(4 / 5) + math.log(2 / 4)
                                                    + math.log(1 / 3)))
    assert add1 == pytest.approx(want1, rel=1e-12)


def test_corpus_bleu_sums_counts():
    c1, c2 = "The cat the cat on the mat", "there is a cat on the mat"
    refs = [[REF1, REF2], [REF2]]
    # sums: p1 = (5 + 7)/(7 + 7), p2 = (4 + 6)/(6 + 6), p3 = (2 + 5)/(5 + 5), p4 = (1 + 4)/(4 + 4); c = r = 14
    want = math.exp(0.25 * (math.log(12 / 14) + math.log(10 / 12) + math.log(7 / 10) + math.log(5 / 8)))
    got = corpus_bleu([c1, c2], refs)
    assert got == pytest.approx(want, rel=1e-12)
    # not the average of the sentence scores
    avg = (sentence_bleu(c1, refs[0]) + sentence_bleu(c2, refs[1])) / 2
    assert abs(got - avg) > 1e-3


def test_bad_inputs():
    with pytest.raises(ValueError, match="'smoothing'"):
        sentence_bleu("a b", ["a b"], smoothing="bogus")
    with pytest.raises(ValueError, match="'references'"):
        sentence_bleu("a b", [])
    with pytest.raises(ValueError, match="'references_list'"):
        corpus_bleu(["a"], [])
    with pytest.raises(ValueError, match="'weights'"):
        sentence_bleu("a b", ["a b"], weights=[1.0])
    with pytest.raises(TypeError, match="'candidate'"):
        sentence_bleu(3, ["a b"])
