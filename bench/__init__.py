"""The attestream benchmark harness (`make bench`, `python -m bench`).

One run starts its own local stack (`attestream.stack.StackManager`) in a temporary home and
measures, each as the median of several runs and each against a raw ceiling measured in the
same run: the ledger's end-to-end throughput (decisions topic -> entries, nodes and a signed
checkpoint durable in ClickHouse -> offsets committed) against a plain consume-and-insert
pipeline, inclusion proofs read from the store against one trivial node read, the in-memory
tree against raw SHA-256, and the pure-Python cost of one entry. Results go to
`bench/results/<timestamp>.json` and to the table in `docs/benchmarks.md`.
"""
