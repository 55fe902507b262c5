"""Shared by every stage: errors, reading files, JSON safety, metric names and scores."""
