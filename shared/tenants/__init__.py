"""Tenants, their two resiliency features (enabled for good), and their API tokens."""
