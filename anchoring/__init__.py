"""EVM anchoring: one transaction per interval commits to the latest checkpoint of every chain."""
