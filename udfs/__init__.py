"""The plain-Python logic the Flink job runs: parsing, features, scoring, online learning.

Nothing here imports Flink, so every piece is testable on its own.
"""
