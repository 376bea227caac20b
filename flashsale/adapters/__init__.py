"""Thin clients for the three servers; no business rules here."""
