"""Local development: the Firestore emulator and the local stack behind ``make run``."""
