"""A fake Discord on 127.0.0.1 that unmodified discord.py 2.7.1 clients connect to (work in progress).

`tests.fakes.discord.dave` is usable on its own: `dave_group([uid, ...])` returns davey sessions that
share one ready DAVE group (no networking), and `LocalDaveGroup` lets a test join/leave/re-initialise
members.
"""
