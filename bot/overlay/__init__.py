"""The live caption overlay: a private web page per session and language (OBS browser source or any browser).

    LiveSession --CaptionUpdate--> FeedHub (feed.py: per session+language, bounded, resumable)
    /interpret overlay --> OverlayService (service.py) --> signed link (tokens.py)
    GET /overlay/<token>, /overlay/<token>/events (SSE), /overlay/static/* (web.py, static/)

A link is valid while its session runs and for a short grace after it ended, and while a restarted bot
is still resuming that session after a crash; anything else is a 404.
"""
