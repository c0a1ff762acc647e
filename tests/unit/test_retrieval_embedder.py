"""The real embedding model: fast token counts equal the tokenizer's, pooled encoding equals one pass."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval_svc.embedder import Embedder

TEXTS = [
    "Zebras have black-and-white stripes (Equus quagga), e.g. in 3.5% of cases.",
    "Naïve café résumé: ﬁnancial “quotes” and IL-6/p53 signalling at 37°C!",
    "中文 text mixed with English words and numbers 12345.",
    "Title\nA body on a new line,\twith tabs   and  spaces.",
    "",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(batch_size=4, workers=2)


def test_counting_by_words_equals_the_tokenizer(embedder: Embedder) -> None:
    for text in TEXTS:
        assert embedder.count_tokens(text) == embedder._tokens(text), text


def test_pooled_encoding_keeps_order_and_values(embedder: Embedder) -> None:
    texts = [f"{text} number {i}" for i in range(3) for text in TEXTS]
    pooled = embedder.encode(texts)
    assert pooled.shape == (len(texts), embedder.dim)
    np.testing.assert_allclose(pooled, embedder._encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
