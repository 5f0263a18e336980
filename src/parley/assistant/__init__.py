"""The assistant: understands a shopper's message and decides how to answer it.

``intents`` names what a message can be about, ``classifier`` maps text to one of those
intents with a confidence, and ``examples`` writes the training sentences the shipped model
learns from. To add an intent: add it to ``Intent``, give it phrases in ``phrases``, and add
a few lines for it to ``tests/assistant/data/shopper_messages.csv``.
"""
