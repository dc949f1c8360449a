"""The verifiable core of attestream: RFC 6962 Merkle trees and C2SP signed checkpoints.

Pure code (no Kafka, ClickHouse or chain access): `merkle` hashes, grows and proves the tree,
`keys` and `note` sign and open checkpoints. The byte formats are in docs/ledger-format.md.
"""
