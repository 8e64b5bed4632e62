"""What `/metrics` reports: running totals the workers keep in Redis, and counts read from the database."""
