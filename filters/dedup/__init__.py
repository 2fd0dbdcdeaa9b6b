"""Near-duplicate detection, Ray-free: shingling, MinHash, LSH banding, candidates and clustering.

The stage `stages/dedup.py` distributes these pieces over Ray tasks; everything here works on
one batch of texts (or one partition of rows) with numpy and pyarrow, so it can be tested and
reused without Ray: `shingles`, `minhash` and `sketch` (what a text is compared by), `lsh` and
`candidates` (which rows share a bucket), `nodes` (row keys), `clusters`, `members` and
`verdicts` (which rows are duplicates, and which one a cluster keeps), `boilerplate`.
"""
