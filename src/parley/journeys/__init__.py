"""Journeys: store events start runs that wait, check, and send the right message.

A journey is data (``definitions.py`` holds the built-in ones, stored per workspace so a
store can edit them); the engine (``engine.py``) advances one run step by step through the
job queue; ``service.py`` starts and exits runs when events arrive.
"""
