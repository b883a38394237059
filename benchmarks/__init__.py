"""Benchmarks of the collection (issue 13): our playbooks against a reference peer."""
