//! `azure-kv:` end to end (written after the Google side).
