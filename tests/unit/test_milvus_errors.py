"""How Milvus's errors reach the service: unavailable (retry later) or refused (a fault), never raw."""

from __future__ import annotations

import pytest
from pymilvus.exceptions import MilvusException

from retrieval_svc.backend import BackendRefused, BackendUnavailable
from retrieval_svc.milvus_errors import Breaker, milvus_errors


def test_a_call_milvus_refuses_is_backend_refused_naming_the_setting_and_the_reason() -> None:
    with pytest.raises(BackendRefused, match=r"LIKEOPT_MILVUS_URI=http://m:1 refused the call: VARCHAR field 'text'"):
        with milvus_errors("http://m:1"):
            raise MilvusException(code=6, message="VARCHAR field 'text' value length 70002 exceeds max_length=65535")


def test_a_refused_call_leaves_the_breaker_closed() -> None:
    """Milvus answered, so the next call must try it rather than fail at once as if it were down."""
    breaker = Breaker("http://m:1")
    with pytest.raises(BackendRefused), breaker.guard():
        raise MilvusException(code=6, message="refused")
    with breaker.guard():
        pass
    with pytest.raises(BackendUnavailable), breaker.guard():
        raise MilvusException(code=2, message="Retry timeout: 3s")
