"""The FHIR rules Loopgate enforces and the vocabulary it fails in. Pure: no I/O of any kind."""
