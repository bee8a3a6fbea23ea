"""The FHIR R4 REST door at ``/fhir``: thin routes that parse, call ``FhirService`` and render."""
