"""Referrals as community organizations see them: the JSON API's core over the FHIR store."""
