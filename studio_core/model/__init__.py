"""The Wide & Deep network (torch)."""
