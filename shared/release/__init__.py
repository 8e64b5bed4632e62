"""Release: give each quarantined value that nobody holds any more to its earliest waiter."""
