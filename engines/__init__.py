"""Ways of generating text, behind the one interface in ``engines.base``."""
