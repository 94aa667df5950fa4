"""The Chainlit chat's rooms (app.py holds the handlers): rendering, the settings panel, history, the
library view. Only the chat imports these; they render what rag.pipeline yields."""
