"""The command line (`meshdoctor`, `kubectl-meshdoctor`): `main.py` for the commands, `live.py` for the live flags."""
