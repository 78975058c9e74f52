"""Vocabulary, padding and masking helpers of oxinet.text."""

import numpy as np
import pytest

from oxinet.text import EOS, PAD, UNK, build_vocab, encode_sequences, one_hot, pad_sequences, sequence_mask


def test_build_vocab_word_and_char():
    v = build_vocab(["the cat sat", "the dog", "a cat"], level="word", min_freq=2)
    assert v.itos[:3] == [PAD, UNK, EOS]
    assert v.itos[3:] == ["cat", "the"]  # both twice, alphabetical tie-break
    assert v.pad_index == 0 and v.unk_index == 1 and v.eos_index == 2
    ids = encode_sequences(v, ["the dog", "cat"])
    assert ids == [[4, 1, 2], [3, 2]]
    c = build_vocab(["abca"], level="char", unk=False, bos=True)
    assert c.itos == [PAD, EOS, "<bos>", "a", "b", "c"]
    assert encode_sequences(c, ["ba"], add_bos=True) == [[2, 4, 3, 1]]
    with pytest.raises(KeyError, match="'z'"):
        encode_sequences(c, ["z"])
    assert v.decode(np.array([[4, 3, 0, 3]])) == ["the cat"]


def test_pad_sequences_and_mask():
    x, n = pad_sequences([[1, 2, 3], [4], []], value=0)
    assert x.tolist() == [[1, 2, 3], [4, 0, 0], [0, 0, 0]] and n.tolist() == [3, 1, 0]
    x, n = pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="pre", truncating="pre")
    assert x.tolist() == [[2, 3], [0, 4]] and n.tolist() == [2, 1]
    x, _ = pad_sequences([[1, 2, 3]], maxlen=2)
    assert x.tolist() == [[1, 2]]
    m = sequence_mask([2, 0, 3])
    assert m.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    assert sequence_mask([1], maxlen=2).tolist() == [[True, False]]
    with pytest.raises(ValueError, match="'padding'"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="'lengths'"):
        sequence_mask([[1, 2]])


def test_one_hot_reused():
    oh = one_hot(np.array([[0, 2]]), 3)
    assert oh.shape == (1, 2, 3) and oh[0, 1, 2] == 1 and oh.sum() == 2
