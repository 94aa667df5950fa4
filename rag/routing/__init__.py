"""Routing between engines for the "auto" engine: the rules file (``rules``) and its parser."""
