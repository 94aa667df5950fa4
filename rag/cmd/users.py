"""`python -m rag users add NAME | remove NAME | list | passwd NAME | key NAME | logout NAME`: the users of
LRC_AUTH=password (rag.users, in data_dir/users.sqlite3).

A password is asked for twice on a terminal (not echoed); otherwise, or with --password-stdin, it is
the first line of standard input (for scripts: `printf '%s\\n' "$PW" | python -m rag users add NAME
--password-stdin`). `add` prints the user's API key once; `key` replaces it. `remove` keeps the
user's uploads on disk unless --delete-files is given, which also takes them out of the library.
`remove`, `passwd` and `logout` end the user's chat sessions at once: the login tokens they hold are
refused on their next request (rag.chat.sessions checks each token's session version), also by a
server that is running now.
"""
from __future__ import annotations

import argparse
import getpass
import shutil
import sys
import time

from rag import owners
from rag.config import settings
from rag.users import NoSuchUser, UserError, UserExists, Users, check_name

HELP = ("manage the users of LRC_AUTH=password: add, remove, list, passwd (password), key (new API key), "
        "logout (end their chat sessions)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="create a user (asks for the password; prints their API key once)")
    a.add_argument("name")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    r = sub.add_parser("remove", help="delete a user (their uploads stay unless --delete-files)")
    r.add_argument("name")
    r.add_argument("--delete-files", action="store_true",
                   help="also delete the user's uploads and take them out of the library")
    sub.add_parser("list", help="the users, when they were created, whether they have an API key")
    w = sub.add_parser("passwd", help="set a user's password (also ends their chat sessions)")
    w.add_argument("name")
    w.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    k = sub.add_parser("key", help="make a new API key for a user (the old one stops working)")
    k.add_argument("name")
    o = sub.add_parser("logout", help="sign a user out everywhere: their chat login tokens stop working")
    o.add_argument("name")


def read_password(from_stdin: bool) -> str:
    """The new password: asked twice on a terminal, else the first line of standard input."""
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise ValueError("No password on standard input: send it as one line.")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("The two passwords differ; nothing was changed.")
    return first


def _key_lines(name: str, key: str) -> str:
    return (f"API key of {name} for the OpenAI-compatible API (/v1): {key}\n"
            "It is shown only this once: clients send it as 'Authorization: Bearer KEY'. "
            f"`python -m rag users key {name}` makes a new one.")


def _auth_note() -> None:
    if settings().auth != "password":
        print("Note: LRC_AUTH is 'none', so nobody signs in; users take effect with LRC_AUTH=password.",
              file=sys.stderr)


def _delete_uploads(name: str, folder) -> None:
    from rag.cmd.index import open_library

    lib = open_library(argparse.Namespace(index_dir=None))
    chunks = lib.remove(folder)  # before the files go: the index keys are the resolved paths
    shutil.rmtree(folder)
    print(f"Deleted {name}'s uploads ({folder}) and took them out of the library ({chunks} passages).")


def _remove(users, name: str, delete_files: bool) -> int:
    folder = owners.uploads_dir(name)
    removed = users.remove(name)
    if removed:
        print(f"Removed user {name}: they can no longer sign in, their open sessions are signed out, "
              "and their API key stopped working.")
    elif not (delete_files and folder.is_dir()):
        raise NoSuchUser(name)
    else:
        print(f"There is no user named {name!r} (any more); deleting the uploads left behind.")
    if not folder.is_dir():
        print(f"{name} had no uploads.")
    elif delete_files:
        _delete_uploads(name, folder)
    else:
        print(f"Their uploads stay on disk under {folder} (other users never see them; a new user named "
              f"{name} would). `python -m rag users remove {name} --delete-files` deletes them and takes "
              "them out of the library.")
    return 0


def _list(users) -> int:
    rows = users.list()
    if not rows:
        print("No users yet: `python -m rag users add NAME` creates one.")
        return 0
    width = max(4, *(len(u.name) for u in rows))
    print(f"{'NAME':<{width}}  {'CREATED':<19}  API KEY")
    for u in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(u.created_at))
        print(f"{u.name:<{width}}  {created:<19}  {'yes' if u.has_api_key else 'no'}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        users = Users()
        if args.action == "list":
            return _list(users)
        check_name(args.name)
        if args.action == "add":
            if users.exists(args.name):  # before asking for a password
                raise UserExists(args.name)
            key = users.add(args.name, read_password(args.password_stdin))
            print(f"Added user {args.name}.")
            print(_key_lines(args.name, key))
            _auth_note()
        elif args.action == "passwd":
            if not users.exists(args.name):
                raise NoSuchUser(args.name)
            users.set_password(args.name, read_password(args.password_stdin))
            print(f"Changed the password of {args.name}; their open sessions are signed out.")
        elif args.action == "key":
            key = users.new_api_key(args.name)
            print(f"Made a new API key; the old one of {args.name} no longer works.")
            print(_key_lines(args.name, key))
        elif args.action == "logout":
            if not users.end_sessions(args.name):
                raise NoSuchUser(args.name)
            print(f"Signed {args.name} out everywhere: their chat sessions must sign in again "
                  "(their API key still works; `key` replaces it).")
        elif args.action == "remove":
            return _remove(users, args.name, args.delete_files)
        return 0
    except (UserError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
