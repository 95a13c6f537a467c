"""Plumbing every service shares: settings, envelope, auth, messages, bus, stores, logging."""
