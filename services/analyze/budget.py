"""The time budget lives in services/common/budget.py (render has one too); analyze's modules import it from here."""
from ..common.budget import Budget

__all__ = ["Budget"]
