"""Secret values every test uses for credentials, so the suite-wide log guard can look for them.

They have the shapes of the real things, so pattern-based redaction is exercised too.
"""

DISCORD_TOKEN = "MTA5MDEyMzQ1Njc4OTAxMjM0NQ.GhJkLm.abcdefghijklmnopqrstuvwxyz0123456789AB"
SPEAKER_TOKENS = [
    "MTA5MDEyMzQ1Njc4OTAxMjM0Ng.GhJkLn.bcdefghijklmnopqrstuvwxyz0123456789ABC",
    "MTA5MDEyMzQ1Njc4OTAxMjM0Nw.GhJkLo.cdefghijklmnopqrstuvwxyz0123456789ABCD",
]
PALABRA_CLIENT_ID = "test-client-id-0001"
PALABRA_CLIENT_SECRET = "test-client-secret-s3cr3t-value-0001"
PALABRA_API_KEY = "plbr_testkey_0123456789abcdef0123456789abcdef"
STREAM_KEY = "live_streamkey_9f8e7d6c5b4a"

ALL = [DISCORD_TOKEN, *SPEAKER_TOKENS, PALABRA_CLIENT_SECRET, PALABRA_API_KEY, STREAM_KEY]
