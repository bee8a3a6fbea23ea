"""The FHIR store: tables, engines, migrations and the queries reads, writes and searches use."""
