"""Where the ``milvus`` retrieval backend is imported from; its code is in milvus_collection, as a first step of
splitting it into one module per job."""

from retrieval_svc.milvus_collection import MilvusBackend, stale_chunks_filters

__all__ = ["MilvusBackend", "stale_chunks_filters"]
