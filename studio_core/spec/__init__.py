"""The declarative spec: plain dataclasses with a JSON round trip, and their field checks."""
