"""SMS through Twilio's Programmable Messaging REST API."""
