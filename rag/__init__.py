"""Local RAG Chat: everything between a file or a question and a prompt."""
