"""Wire contracts, topics, the producer helper and the faust detection stream."""
