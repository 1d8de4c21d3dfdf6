"""Waiting for results: the waiter, the poll schedule, the read-ahead, notifications over the broker."""
