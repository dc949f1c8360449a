"""attestream: provable real-time fraud and counterfeit detection."""

__version__ = "0.1.0"
