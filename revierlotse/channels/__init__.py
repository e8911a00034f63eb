"""Input channels of Revierlotse (REST, website socket.io, Telegram) and what they share."""
