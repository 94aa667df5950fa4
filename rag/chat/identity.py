"""Who is chatting: None in the default single-user set-up, else the signed-in user's name."""
from __future__ import annotations

import chainlit as cl

from rag.config import settings

LOCAL_USER = "local"  # the one user of the default set-up (no login step)


def chat_user() -> str | None:
    """The current chat's user name for ownership (rag.owners), None when there are no users."""
    if settings().auth != "password":
        return None
    user = cl.user_session.get("user")
    return getattr(user, "identifier", None)
