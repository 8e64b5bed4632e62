"""Value locks in Redis: key naming, all-or-nothing acquisition with a TTL, release by token."""
