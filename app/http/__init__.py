"""The HTTP interface: the app factory (`main.create_app`), its dependencies (`deps`) and one router per endpoint group
(`routes/`), with the plumbing every request passes through (auth, limits, errors, observability)."""
