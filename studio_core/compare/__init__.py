"""Runs compared on the test rows they share: a leaderboard with intervals and paired differences (torch-free)."""
