"""Great-circle distance between two points given in degrees.

Payments use it for "how far is this terminal from the last one", the supply chain for
"how fast must this item have travelled" (impossible travel means a cloned tag).
"""

from __future__ import annotations

import math

import numpy as np

# Mean Earth radius (IUGG), in km. The spherical model errs by up to ~0.5 %, far below what
# separates a truck from a cloned tag.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in km along the sphere (haversine formula, stable for short distances)."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def haversine_km_matrix(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Pairwise distances (len(lat1) x len(lat2)); the simulators use it to find nearby sites."""
    phi1 = np.radians(lat1)[:, None]
    phi2 = np.radians(lat2)[None, :]
    dlmb = np.radians(lon2)[None, :] - np.radians(lon1)[:, None]
    a = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    distances: np.ndarray = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return distances
