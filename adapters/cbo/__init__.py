"""The lightweight JSON API for community organizations (``/api/v1``): routes, schemas, ports.

The routes know nothing of the database or of the Gravity rules: every action goes through the
``CboCore`` port, which gateway implements with the same workflow the FHIR door uses.
"""

from adapters.cbo.ports import CboCore
from adapters.cbo.problems import problem_from_error
from adapters.cbo.router import cbo_router

__all__ = ["CboCore", "cbo_router", "problem_from_error"]
