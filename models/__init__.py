"""Offline training and the model artifact registry (artifacts live in models/artifacts/, git-ignored)."""
