"""The error report: what each tenant's technical contacts are told, and delivering it by mail."""
