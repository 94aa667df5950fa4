"""One module per `python -m rag` command (see rag/cli.py)."""
