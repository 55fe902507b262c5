"""From a spec and training rows to fitted preprocessing: validate, suggest, edit, encoders."""
