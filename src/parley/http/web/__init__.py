"""The agents' web app: server-rendered pages, signed-in sessions, CSRF and live updates."""
