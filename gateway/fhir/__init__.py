"""FHIR REST semantics without HTTP: reads, writes, search, history and Bundles over the store.

Every write, whatever door it came through (FHIR REST, Bundles, the JSON API, e-mail links),
goes through ``FhirService`` and so through the same structure, profile and workflow rules.
"""

from gateway.fhir.service import FhirService, WriteResult

__all__ = ["FhirService", "WriteResult"]
