"""livefit: a PyFlink job that scores CDC events with offline models and learns online."""

__version__ = "0.1.0"
