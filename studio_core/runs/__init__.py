"""A run: trained from a spec (and tuned), written atomically, read back, evaluated, inspected."""
