"""Replay: general examples mixed into the training set against forgetting (``training.replay``)."""
