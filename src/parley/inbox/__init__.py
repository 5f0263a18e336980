"""The inbox: every customer's messages, from every channel, in conversations.

A conversation belongs to one customer and carries inbound and outbound messages of every
channel (journey messages included), the assistant's turns (what it understood, what it
looked up, what it did) and the events agents act on (hand-off, hand-back, assignment,
status). ``service.py`` holds the verbs; the webhook routes and the assistant call them.
"""
