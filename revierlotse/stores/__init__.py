"""Where Rasa keeps conversations and their locks, configured from the settings.

endpoints.yml names these classes; the launcher exports the URLs they get:

    tracker_store: DatabaseTrackerStore   (DATABASE_URL: SQLite file or PostgreSQL)
    lock_store:    ConfiguredLockStore    (REDIS_URL: atomic Redis locks, or in-process)

Import the submodules directly; this package stays free of Rasa imports so that
light tools (`make purge`) do not pay for them.
"""
