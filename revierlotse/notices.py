"""What the service itself says to users, in German: request errors and turn limits.

These are not knowledge answers (those live in data/knowledge/); they are the words
for "your request was malformed", "too many messages" and the like, shared by every
channel. The apology for failures is read from the knowledge source
(`revierlotse.replies.apology_text`), not from here.
"""

from __future__ import annotations

NOT_A_JSON_OBJECT = (
    "Das konnte ich nicht lesen. Schick mir bitte ein JSON-Objekt (Content-Type "
    "application/json, UTF-8) mit den Feldern „sender“ und „message“."
)
BAD_SENDER = (
    "Es fehlt eine gültige Absenderkennung („sender“): ein Text mit 1 bis 128 Zeichen, "
    "nur Buchstaben, Ziffern und . _ - : @ + =, beginnend mit einem Buchstaben oder einer Ziffer "
    "(„telegram:“ am Anfang ist dem Telegram-Kanal vorbehalten)."
)
BAD_MESSAGE = "Das Feld „message“ fehlt oder ist kein Text. Schick mir deine Frage bitte als Text."
REQUEST_TOO_LARGE = (
    "Deine Anfrage ist zu groß. Schick mir bitte höchstens {max_bytes} Bytes auf einmal."
)
MESSAGE_TOO_LONG = (
    "Deine Nachricht ist mir zu lang. Fass dich bitte kürzer (höchstens {max_chars} Zeichen) "
    "oder stell deine Fragen nacheinander."
)
EMPTY_MESSAGE = (
    "Ich habe leider keinen Text bekommen. Stell mir einfach eine Frage, zum Beispiel: "
    "„Was verdient ein IT Manager in Duisburg?“"
)
RATE_LIMITED = (
    "Puh, das waren gerade sehr viele Nachrichten auf einmal. Gönn mir bitte eine kurze "
    "Pause und schreib mir in einer Minute wieder."
)

# Telegram: the user sent a sticker, photo, voice message or the like.
ONLY_TEXT = (
    "Ich verstehe leider nur Text. Schreib mir deine Frage einfach als Nachricht, "
    "zum Beispiel: „Was verdient ein IT Manager in Duisburg?“"
)
