"""What stands between the network and the app: the request guard (guard.py). docs/SECURITY.md."""
