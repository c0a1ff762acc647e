"""retrieval_svc: owns the corpus, its chunks and indexes (BM25 and dense), and answers searches."""
