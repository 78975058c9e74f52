"""``oxinet.text``: the course's sequence and language tools (INVENTORY 1(k), F52-F65).

* :mod:`~oxinet.text.vocab`: vocabularies with ``<pad> <unk> <eos>``, padding, masks, one-hot
* :mod:`~oxinet.text.sampling`: sampling from a language model (temperature, top-k)
* :mod:`~oxinet.text.decoding`: greedy and beam search over any ``step`` function; CTC decoding
* :mod:`~oxinet.text.bleu`: sentence and corpus BLEU
* :mod:`~oxinet.text.embeddings`: cosine similarity, neighbours, analogies, PCA plots
* :mod:`~oxinet.text.word2vec`, :mod:`~oxinet.text.glove`: learning word vectors
* :mod:`~oxinet.text.debias`: bias direction, neutralize, equalize
"""

from oxinet.text.vocab import *  # noqa: F401,F403
from oxinet.text.sampling import *  # noqa: F401,F403
from oxinet.text.decoding import *  # noqa: F401,F403
from oxinet.text.bleu import *  # noqa: F401,F403
from oxinet.text.embeddings import *  # noqa: F401,F403
from oxinet.text.word2vec import *  # noqa: F401,F403
from oxinet.text.glove import *  # noqa: F401,F403
from oxinet.text.debias import *  # noqa: F401,F403
from oxinet.text import vocab, sampling, decoding, bleu, embeddings, word2vec, glove, debias, png

__all__ = (vocab.__all__ + sampling.__all__ + decoding.__all__ + bleu.__all__ + embeddings.__all__
           + word2vec.__all__ + glove.__all__ + debias.__all__)
