"""The outside world: hospital FHIR servers, CBO JSON clients and webhooks, e-mail."""
