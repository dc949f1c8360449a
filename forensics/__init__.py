"""Forensics: verify a stored ledger (`verify`, `verify_range`) and make or check proofs.

`verify` recomputes a whole ledger, `verify_range` one chain's slice in time proportional to
it; every fault they report is a `report.FaultKind` (docs/ledger-format.md, "Verification").
"""
