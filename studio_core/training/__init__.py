"""Model-agnostic training: batches, the trainer and its callbacks, multi-process ranks."""
