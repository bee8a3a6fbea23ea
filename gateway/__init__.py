"""Loopgate's composition root: settings, the FHIR store and service, HTTP doors, CLI."""

__version__ = "0.1.0"
