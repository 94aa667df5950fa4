"""Local RAG Chat: everything between a file or a question and a prompt."""

from rag.config import offline_env

offline_env()  # before any module of the package imports Hugging Face code
