"""Morgus: shared contracts, configuration and helpers used by workflows, activities, worker and starter."""
