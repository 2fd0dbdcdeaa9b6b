"""Near-duplicate detection, Ray-free: shingling, MinHash, LSH banding and clustering.

The stage `stages/dedup.py` distributes these pieces with Ray Data; everything here works on
one batch of texts with numpy and pyarrow, so it can be tested and reused without Ray.
"""
